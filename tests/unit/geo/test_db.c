/* Unit tests of geo/db.c: opening and verifying MMDB files of both
 * schemas, raw lookups (IPv4, IPv6, IPv4-mapped, not found, reserved),
 * the ASN database, custom field paths, and bad files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anonproxy/common.h"

#include <errno.h>
#include <maxminddb.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "anonproxy/geo.h"
#include "geo-test.h"

static struct ap_geo_db *open_ok(const struct ap_geo_options *o)
{
    struct ap_geo_db *db = NULL;
    char err[AP_GEO_ERR_LEN];
    int rc = ap_geo_db_open(&db, o, 7, err, sizeof(err));
    if (rc != 0)
        fail_msg("open: %d %s", rc, err);
    assert_non_null(db);
    return db;
}

static struct ap_geo_db *open_geoip2(void)
{
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.database = fixture("fixture-geoip2.mmdb");
    return open_ok(&o);
}

static struct ap_geo_db *open_ipl(void)
{
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.schema = AP_GEO_SCHEMA_IP_LOCATION_DB;
    o.database = fixture("fixture-ipl-v4.mmdb");
    o.database_v6 = fixture("fixture-ipl-v6.mmdb");
    return open_ok(&o);
}

static int look(struct ap_geo_db *db, const char *addr, struct ap_geo_record *r, unsigned *prefix)
{
    struct ap_ip ip = IP(addr);
    return ap_geo_db_lookup(db, &ip, r, prefix);
}

static void test_geoip2_ipv4(void **state)
{
    struct ap_geo_db *db = open_geoip2();
    struct ap_geo_record r;
    unsigned prefix;
    assert_int_equal(ap_geo_db_generation(db), 7);
    assert_int_equal(look(db, "192.0.2.1", &r, &prefix), 0);
    assert_string_equal(r.continent, "EU");
    assert_string_equal(r.country, "FR");
    assert_string_equal(r.region, "IDF");
    assert_string_equal(r.city, "Paris");
    assert_string_equal(r.timezone, "Europe/Paris");
    assert_true(r.has_coords);
    assert_true(r.latitude > 48.8565 && r.latitude < 48.8567);
    assert_true(r.longitude > 2.3521 && r.longitude < 2.3523);
    assert_int_equal(r.flags, 0);
    assert_int_equal(prefix, 25);

    assert_int_equal(look(db, "192.0.2.200", &r, &prefix), 0);
    assert_string_equal(r.city, "Grenoble");
    assert_string_equal(r.region, "ARA");
    assert_int_equal(prefix, 26);

    assert_int_equal(look(db, "9.9.9.9", &r, &prefix), 0);
    assert_string_equal(r.city, "Zürich");
    assert_int_equal(prefix, 24);
    ap_geo_db_unref(db);
}

static void test_geoip2_ipv6_and_mapped(void **state)
{
    struct ap_geo_db *db = open_geoip2();
    struct ap_geo_record r;
    unsigned prefix;
    assert_int_equal(look(db, "2001:db8:2::5", &r, &prefix), 0);
    assert_string_equal(r.continent, "SA");
    assert_string_equal(r.country, "BR");
    assert_string_equal(r.region, "SP");
    assert_string_equal(r.city, "São Paulo");
    assert_int_equal(prefix, 48);

    /* IPv4-mapped: the IPv4 answer, with an IPv4 prefix. */
    assert_int_equal(look(db, "::ffff:192.0.2.130", &r, &prefix), 0);
    assert_string_equal(r.city, "Lyon");
    assert_int_equal(prefix, 26);

    /* A country-only network. */
    assert_int_equal(look(db, "2001:db8:4::1", &r, &prefix), 0);
    assert_string_equal(r.country, "NL");
    assert_string_equal(r.continent, "EU");
    assert_string_equal(r.region, "");
    assert_string_equal(r.city, "");
    assert_false(r.has_coords);
    ap_geo_db_unref(db);
}

static void test_not_found(void **state)
{
    struct ap_geo_db *db = open_geoip2();
    struct ap_geo_record r;
    unsigned prefix = 99;
    memset(&r, 0x5a, sizeof(r));
    assert_int_equal(look(db, "5.5.5.5", &r, &prefix), -ENOENT);
    assert_string_equal(r.country, "");
    assert_false(r.has_coords);
    /* 4.0.0.0/6 holds no data in the fixture: one empty network. */
    assert_int_equal(prefix, 6);
    assert_int_equal(look(db, "2a00::1", &r, &prefix), -ENOENT);
    assert_true(prefix > 0 && prefix <= 128);
    ap_geo_db_unref(db);
}

static void test_reserved_never_looked_up(void **state)
{
    struct ap_geo_db *db = open_geoip2();
    struct ap_geo_record r;
    unsigned prefix;
    /* The fixture has data for 10.0.0.0/8 and fd00::/8 on purpose. */
    const char *reserved[] = {
        "10.1.2.3",    "fd00::1",       "::ffff:10.0.0.1", "127.0.0.1",     "0.1.2.3",
        "100.64.0.1",  "169.254.1.1",   "172.16.5.5",      "172.31.255.255", "192.168.1.1",
        "192.0.0.8",   "198.18.0.1",    "224.0.0.1",       "240.0.0.1",      "255.255.255.255",
        "::",          "::1",           "fe80::1",         "fec0::1",        "ff02::1",
        "100::1",      "64:ff9b:1::1",  "::192.0.2.1",
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(reserved); i++) {
        struct ap_ip ip = IP(reserved[i]);
        assert_true(ap_geo_is_reserved(&ip));
        assert_int_equal(look(db, reserved[i], &r, &prefix), -EADDRNOTAVAIL);
        assert_string_equal(r.country, "");
    }
    const char *public_[] = {"172.32.0.1", "100.128.0.1", "192.0.2.1", "198.51.100.1",
                             "203.0.113.1", "2001:db8::1", "64:ff9b::808:808", "8.8.8.8",
                             "::ffff:8.8.8.8"};
    for (size_t i = 0; i < AP_ARRAY_SIZE(public_); i++) {
        struct ap_ip ip = IP(public_[i]);
        assert_false(ap_geo_is_reserved(&ip));
    }
    ap_geo_db_unref(db);
}

static void test_ip_location_db_schema(void **state)
{
    struct ap_geo_db *db = open_ipl();
    struct ap_geo_record r;
    unsigned prefix;
    assert_int_equal(look(db, "192.0.2.1", &r, &prefix), 0);
    assert_string_equal(r.country, "FR");
    /* No continent field in this schema: derived from the country. */
    assert_string_equal(r.continent, "EU");
    assert_string_equal(r.region, "Île-de-France");
    assert_string_equal(r.city, "Paris");
    assert_true(r.has_coords);
    /* Stored as a float. */
    assert_true(r.latitude > 48.856 && r.latitude < 48.857);
    assert_int_equal(prefix, 25);

    /* IPv6 from the IPv6 file, IPv4-mapped from the IPv4 file. */
    assert_int_equal(look(db, "2001:db8:3::1", &r, &prefix), 0);
    assert_string_equal(r.country, "KE");
    assert_string_equal(r.continent, "AF");
    assert_string_equal(r.region, "Nairobi County");
    assert_int_equal(prefix, 48);
    assert_int_equal(look(db, "::ffff:1.1.1.1", &r, &prefix), 0);
    assert_string_equal(r.country, "AU");
    assert_string_equal(r.continent, "OC");
    assert_int_equal(prefix, 24);

    /* Empty strings are absent values. */
    assert_int_equal(look(db, "2001:db8:4::1", &r, &prefix), 0);
    assert_string_equal(r.country, "NL");
    assert_string_equal(r.region, "");
    assert_string_equal(r.timezone, "");
    assert_false(r.has_coords);
    ap_geo_db_unref(db);

    /* Without a v6 file, IPv6 addresses are not found (an IPv4 tree). */
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.schema = AP_GEO_SCHEMA_IP_LOCATION_DB;
    o.database = fixture("fixture-ipl-v4.mmdb");
    db = open_ok(&o);
    assert_int_equal(look(db, "2001:db8:3::1", &r, &prefix), -ENOENT);
    assert_int_equal(prefix, 0);
    assert_int_equal(look(db, "203.0.113.70", &r, &prefix), 0);
    assert_string_equal(r.city, "New York");
    ap_geo_db_unref(db);
}

static void test_asn_flags(void **state)
{
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.database = fixture("fixture-geoip2.mmdb");
    o.asn_database = fixture("fixture-asn.mmdb");
    struct ap_geo_db *db = open_ok(&o);
    struct ap_geo_record r;
    unsigned prefix;
    /* 16509 is in the built-in hosting list; its /27 is narrower than the
     * /26 city network, so the answer holds only for the /27. */
    assert_int_equal(look(db, "203.0.113.5", &r, &prefix), 0);
    assert_string_equal(r.city, "San Francisco");
    assert_int_equal(r.flags, AP_GEO_FLAG_ASN_KNOWN | AP_GEO_FLAG_HOSTING);
    assert_int_equal(r.asn, 0); /* not kept unless asked */
    assert_int_equal(prefix, 27);
    assert_int_equal(look(db, "203.0.113.40", &r, &prefix), 0);
    assert_int_equal(r.flags, AP_GEO_FLAG_ASN_KNOWN);
    assert_int_equal(prefix, 27);
    /* No ASN data: no flags, the city prefix. */
    assert_int_equal(look(db, "203.0.113.70", &r, &prefix), 0);
    assert_int_equal(r.flags, 0);
    assert_int_equal(prefix, 26);
    ap_geo_db_unref(db);

    uint32_t mine[] = {64498};
    o.hosting_asns = mine;
    o.nhosting_asns = 1;
    o.keep_asn = true;
    db = open_ok(&o);
    assert_int_equal(look(db, "203.0.113.40", &r, &prefix), 0);
    assert_int_equal(r.flags, AP_GEO_FLAG_ASN_KNOWN | AP_GEO_FLAG_HOSTING);
    assert_int_equal(r.asn, 64498);
    assert_int_equal(look(db, "203.0.113.5", &r, &prefix), 0);
    assert_int_equal(r.flags, AP_GEO_FLAG_ASN_KNOWN);
    assert_int_equal(r.asn, 16509);
    ap_geo_db_unref(db);
}

static void test_custom_fields(void **state)
{
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.database = fixture("fixture-geoip2.mmdb");
    o.fields[AP_GEO_FIELD_REGION] = "subdivisions.0.names.en";
    o.fields[AP_GEO_FIELD_CITY] = "city.names.fr"; /* not in the data */
    o.fields[AP_GEO_FIELD_TIMEZONE] = "location.accuracy_radius"; /* not a string */
    o.fields[AP_GEO_FIELD_CONTINENT] = "subdivisions.0.names.en"; /* not a code */
    struct ap_geo_db *db = open_ok(&o);
    struct ap_geo_record r;
    unsigned prefix;
    assert_int_equal(look(db, "192.0.2.130", &r, &prefix), 0);
    assert_string_equal(r.region, "Auvergne-Rhône-Alpes");
    assert_string_equal(r.city, "");
    assert_string_equal(r.timezone, "");
    /* A value that is no code is dropped, and the continent derived. */
    assert_string_equal(r.continent, "EU");
    ap_geo_db_unref(db);
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    FILE *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static int open_err(const char *path, char *err, size_t errlen)
{
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.database = path;
    struct ap_geo_db *db = (struct ap_geo_db *)1;
    int rc = ap_geo_db_open(&db, &o, 1, err, errlen);
    assert_null(db);
    return rc;
}

static void test_bad_files(void **state)
{
    char dir[] = "/tmp/geo-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[600], err[AP_GEO_ERR_LEN];

    snprintf(path, sizeof(path), "%s/missing.mmdb", dir);
    assert_int_equal(open_err(path, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "missing.mmdb"));
    assert_non_null(strstr(err, "geo.database"));

    assert_int_equal(open_err(dir, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not a regular file"));

    snprintf(path, sizeof(path), "%s/empty.mmdb", dir);
    write_file(path, "", 0);
    assert_int_equal(open_err(path, err, sizeof(err)), -EINVAL);
    unlink(path);

    snprintf(path, sizeof(path), "%s/garbage.mmdb", dir);
    char junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(i * 7 + 3);
    write_file(path, junk, sizeof(junk));
    assert_int_equal(open_err(path, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not a valid MaxMind DB file"));
    unlink(path);

    /* A truncated download: the metadata at the end is gone. */
    snprintf(path, sizeof(path), "%s/truncated.mmdb", dir);
    copy_file(fixture("fixture-geoip2.mmdb"), path);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
    assert_int_equal(open_err(path, err, sizeof(err)), -EINVAL);
    unlink(path);

    /* A valid tree over a garbled data section: libmaxminddb opens it, our
     * verification walk must not. */
    snprintf(path, sizeof(path), "%s/baddata.mmdb", dir);
    copy_file(fixture("fixture-geoip2.mmdb"), path);
    MMDB_s m;
    assert_int_equal(MMDB_open(path, MMDB_MODE_MMAP, &m), MMDB_SUCCESS);
    size_t data_off = (size_t)(m.data_section - m.file_content);
    MMDB_close(&m);
    static uint8_t image[1 << 16];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t len = fread(image, 1, sizeof(image), f);
    fclose(f);
    assert_true(len > data_off && len < sizeof(image));
    /* The data section ends where the metadata marker starts. */
    static const uint8_t marker[] = "\xab\xcd\xefMaxMind.com";
    size_t end = len - (sizeof(marker) - 1);
    while (end > data_off && memcmp(image + end, marker, sizeof(marker) - 1) != 0)
        end--;
    assert_true(end > data_off);
    memset(image + data_off, 0xff, end - data_off);
    write_file(path, image, len);
    assert_int_equal(open_err(path, err, sizeof(err)), -EINVAL);
    if (strstr(err, "corrupt data section") == NULL)
        fail_msg("%s", err);
    unlink(path);

    /* The right format but the wrong file: an ASN database as the city
     * database. */
    assert_int_equal(open_err(fixture("fixture-asn.mmdb"), err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "country.iso_code"));

    /* The wrong schema: ip-location-db files read as geoip2. */
    assert_int_equal(open_err(fixture("fixture-ipl-v4.mmdb"), err, sizeof(err)), -EINVAL);

    /* An IPv4 tree given as the IPv6 file. */
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.schema = AP_GEO_SCHEMA_IP_LOCATION_DB;
    o.database = fixture("fixture-ipl-v4.mmdb");
    o.database_v6 = fixture("fixture-ipl-v4.mmdb");
    struct ap_geo_db *db;
    assert_int_equal(ap_geo_db_open(&db, &o, 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "IPv4-only"));

    /* A missing ASN file fails the whole open. */
    ap_geo_options_init(&o);
    o.database = fixture("fixture-geoip2.mmdb");
    o.asn_database = "/nonexistent/asn.mmdb";
    assert_int_equal(ap_geo_db_open(&db, &o, 1, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "geo.asn_database"));

    /* Invalid options never reach the file system. */
    ap_geo_options_init(&o);
    assert_int_equal(ap_geo_db_open(&db, &o, 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "geo.database"));
    assert_int_equal(rmdir(dir), 0);
}

static void test_refcount_and_stale(void **state)
{
    char dir[] = "/tmp/geo-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[600], tmp[600];
    snprintf(path, sizeof(path), "%s/city.mmdb", dir);
    snprintf(tmp, sizeof(tmp), "%s/city.mmdb.new", dir);
    copy_file(fixture("fixture-geoip2.mmdb"), path);
    struct ap_geo_options o;
    ap_geo_options_init(&o);
    o.database = path;
    struct ap_geo_db *db = open_ok(&o);
    assert_false(ap_geo_db_is_stale(db));
    assert_ptr_equal(ap_geo_db_ref(db), db);
    ap_geo_db_unref(db);

    /* geoipupdate's way: a new file renamed over the old one. */
    copy_file(fixture("fixture-geoip2-b.mmdb"), tmp);
    assert_int_equal(rename(tmp, path), 0);
    assert_true(ap_geo_db_is_stale(db));
    /* The old mapping still answers with the old data. */
    struct ap_geo_record r;
    unsigned prefix;
    assert_int_equal(look(db, "8.8.8.8", &r, &prefix), 0);
    assert_string_equal(r.country, "US");
    ap_geo_db_unref(db);

    db = open_ok(&o);
    assert_int_equal(look(db, "8.8.8.8", &r, &prefix), 0);
    assert_string_equal(r.country, "CA");
    unlink(path);
    assert_true(ap_geo_db_is_stale(db));
    ap_geo_db_unref(db);
    assert_int_equal(rmdir(dir), 0);
}

static void test_bad_address(void **state)
{
    struct ap_geo_db *db = open_geoip2();
    struct ap_geo_record r;
    unsigned prefix;
    struct ap_ip ip;
    memset(&ip, 0, sizeof(ip));
    assert_int_equal(ap_geo_db_lookup(db, &ip, &r, &prefix), -EINVAL);
    ip.family = 5;
    assert_int_equal(ap_geo_db_lookup(db, &ip, &r, &prefix), -EINVAL);
    assert_int_equal(ap_geo_db_lookup(db, NULL, &r, &prefix), -EINVAL);
    ap_geo_db_unref(db);
    ap_geo_db_unref(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geoip2_ipv4),
        cmocka_unit_test(test_geoip2_ipv6_and_mapped),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_reserved_never_looked_up),
        cmocka_unit_test(test_ip_location_db_schema),
        cmocka_unit_test(test_asn_flags),
        cmocka_unit_test(test_custom_fields),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_refcount_and_stale),
        cmocka_unit_test(test_bad_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
