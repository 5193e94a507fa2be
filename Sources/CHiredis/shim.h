#ifndef GOSSAMER_CHIREDIS_SHIM_H
#define GOSSAMER_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
