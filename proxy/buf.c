/* Work in progress: this module is being written in this session. */
#include "anonproxy/common.h"
