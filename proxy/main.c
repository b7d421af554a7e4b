#include "anonproxy/common.h"
int main(void) { return 1; }
