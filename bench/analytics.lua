-- wrk script of the macro benchmark (bench/run.py): a realistic analytics hit.
--
-- Every request is POST /collect with a ~700-byte JSON body (event name, page
-- URL with query parameters, device id, user id, screen size, timestamp) and
-- the headers Chrome 126 sends with a fetch() beacon: cookies, low- and
-- high-entropy client hints, Origin, Referer, and X-Forwarded-For rotating
-- over 50 public addresses from 50 countries (46 IPv4, 4 IPv6), as a load
-- balancer in front of the proxy would set it. The addresses are never
-- contacted: they are only header values that the proxies geolocate and
-- truncate.
--
-- The 50 requests are built once per thread in init(); request() hands them
-- out in turn, so the script costs wrk almost nothing per request.
--
-- Environment:
--   ANALYTICS_CLOSE=1      send "Connection: close" (handshake benchmarks)
--   ANALYTICS_DUMP=FILE    write the first request to FILE (bench/run.py feeds
--                          it to holdconns and to its job check)
-- At the end it prints one line "WRKJSON {...}" with the figures run.py reads.
--
-- Run by hand: wrk -t1 -c64 -d10s -s bench/analytics.lua http://127.0.0.1:8080

-- Address, country (GeoLite2 City, June 2026), city. The first one is the
-- address run.py's job check looks for.
local addrs = {
  "81.2.69.142",       -- GB Bracknell
  "84.77.202.167",     -- ES Barcelona
  "14.37.48.94",       -- KR Incheon
  "24.222.214.18",     -- CA Stephenville
  "63.46.217.16",      -- US Glendale
  "58.23.68.75",       -- CN Xiamen
  "80.92.52.149",      -- DE Hurth
  "78.127.92.179",     -- FR Haguenau
  "89.77.250.108",     -- PL Warsaw
  "213.233.35.216",    -- IT Rome
  "176.33.31.188",     -- TR Istanbul
  "189.197.177.6",     -- MX Durango
  "89.26.52.1",        -- AT Salzburg
  "89.135.245.213",    -- HU Torokbalint
  "183.82.11.53",      -- IN Hyderabad
  "95.85.182.198",     -- RS Stara Moravica
  "59.168.114.157",    -- JP Niiza
  "191.178.186.21",    -- BR Sao Luis
  "197.43.81.44",      -- EG Zefta
  "34.14.77.152",      -- BE Brussels
  "91.79.67.6",        -- RU Samara
  "196.181.234.170",   -- CI Abidjan
  "103.226.161.19",    -- AU Melbourne
  "35.216.132.104",    -- CH Zurich
  "1.171.195.22",      -- TW Banqiao
  "85.253.76.73",      -- EE Sillamae
  "94.53.192.214",     -- RO Floresti
  "171.235.252.217",   -- VN Bien Hoa
  "197.155.68.4",      -- KE Nairobi
  "102.107.107.20",    -- TN Sousse
  "40.127.136.112",    -- IE Dublin
  "217.11.65.9",       -- KZ Almaty
  "41.77.55.242",      -- ZA Benoni
  "213.149.34.53",     -- HR Osijek
  "200.81.126.105",    -- AR Santiago del Estero
  "91.145.82.134",     -- FI Helsinki
  "188.82.113.159",    -- PT Mangualde
  "191.98.21.227",     -- CO Ibague
  "62.103.81.192",     -- GR Thessaloniki
  "191.119.157.203",   -- CL Concepcion
  "51.136.154.194",    -- NL Amsterdam
  "196.124.220.180",   -- MA Marrakesh
  "182.0.164.68",      -- ID Jakarta
  "83.233.247.30",     -- SE Malmo
  "115.188.126.104",   -- NZ Auckland
  "176.12.174.207",    -- IL Tel Aviv
  "2a01:e0a:1:2c4::51",        -- FR Castelnau-le-Lez
  "2804:14c:1:aa::9",          -- BR Sao Paulo
  "2a00:1450:4001:80b::200e",  -- DE Frankfurt am Main
  "2c0f:fb50:4002:803::2004",  -- KE
}

local events = { "page_view", "add_to_cart", "scroll", "view_item", "begin_checkout" }

local close_conn = os.getenv("ANALYTICS_CLOSE") == "1"
local dump_path = os.getenv("ANALYTICS_DUMP")

local function body_for(i)
  local ts = 1718012345678 + i * 1013
  local ev = events[(i % #events) + 1]
  local device = string.format("d3b07384-d113-4ec6-a6c8-%012x", 0x5e0c7b2a91 + i * 7919)
  local user = string.format("u_%010d", 8812736451 - i * 104729)
  return table.concat({
    '{"event":"', ev, '",',
    '"ts":', tostring(ts), ',',
    '"page":{"url":"https://shop.example.com/products/sneaker-42?color=black&size=42',
    '&utm_source=newsletter&utm_medium=email&utm_campaign=summer_sale_2026',
    '&gclid=Cj0KCQjw8MG1BhCoARIsAHxSiQl3Xn', string.format("%04d", i), '&fbclid=IwAR2xQpLm7',
    '","title":"Sneaker 42 - Black | Example Shop","referrer":"https://www.google.com/"},',
    '"device_id":"', device, '",',
    '"user_id":"', user, '",',
    '"session_id":"s', tostring(1718012345 + i), '.', tostring(3 + i % 5), '",',
    '"screen":{"width":1920,"height":1080,"dpr":1.25,"color_depth":24},',
    '"lang":"de-DE","tz":"Europe/Berlin",',
    '"props":{"item_id":"SKU-42-BLK","item_name":"Sneaker 42","price":89.95,"currency":"EUR",',
    '"quantity":1,"list":"search results","position":', tostring(i % 24 + 1), '},',
    '"engagement_ms":', tostring(1200 + i * 37), '}',
  })
end

local function request_for(i, addr)
  local body = body_for(i)
  local query = string.format("v=2&tid=G-8XK2L9QZ1M&cid=1843672819.1718000000&sid=%d&_p=%d&en=%s",
    1718012345 + i, 1718012345678 + i, events[(i % #events) + 1])
  local h = {
    "POST /collect?" .. query .. " HTTP/1.1",
    "Host: analytics.example.com",
    "Connection: " .. (close_conn and "close" or "keep-alive"),
    "Content-Length: " .. #body,
    'sec-ch-ua: "Not/A)Brand";v="8", "Chromium";v="126", "Google Chrome";v="126"',
    'sec-ch-ua-platform: "Windows"',
    "sec-ch-ua-mobile: ?0",
    'sec-ch-ua-full-version-list: "Not/A)Brand";v="8.0.0.0", "Chromium";v="126.0.6478.127", "Google Chrome";v="126.0.6478.127"',
    'sec-ch-ua-platform-version: "15.0.0"',
    'sec-ch-ua-arch: "x86"',
    'sec-ch-ua-bitness: "64"',
    'sec-ch-ua-model: ""',
    "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Content-Type: application/json",
    "Accept: */*",
    "Origin: https://shop.example.com",
    "Sec-Fetch-Site: same-site",
    "Sec-Fetch-Mode: cors",
    "Sec-Fetch-Dest: empty",
    "Referer: https://shop.example.com/products/sneaker-42?color=black&size=42&utm_source=newsletter",
    "Accept-Encoding: gzip, deflate, br, zstd",
    "Accept-Language: de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7",
    string.format("Cookie: _ga=GA1.1.1843672819.1718000000; _ga_8XK2L9QZ1M=GS1.1.%d.3.1.%d.0.0.0; "
      .. "_fbp=fb.1.1718000000000.98765%04d; sid=s%%3Aab12cd34ef56%04d.Xq9; consent=analytics%%3A1",
      1718012345 + i, 1718012399 + i, i, i),
    string.format("X-Device-Id: d3b07384-d113-4ec6-a6c8-%012x", 0x5e0c7b2a91 + i * 7919),
    "X-Forwarded-For: " .. addr,
  }
  return table.concat(h, "\r\n") .. "\r\n\r\n" .. body
end

local reqs = {}
local n = 0

function setup(thread)
  -- Threads start at different addresses so that they do not move in step.
  thread:set("offset", (n * 17) % #addrs)
  n = n + 1
end

function init(args)
  for i, a in ipairs(addrs) do
    reqs[i] = request_for(i, a)
  end
  n = offset or 0
  if dump_path ~= nil and dump_path ~= "" then
    local f = assert(io.open(dump_path, "wb"))
    f:write(reqs[1])
    f:close()
  end
end

function request()
  n = n % #reqs + 1
  return reqs[n]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,"errors_read":%d,'
    .. '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"lat_mean_us":%.1f,'
    .. '"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_p999_us":%d,"lat_max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
