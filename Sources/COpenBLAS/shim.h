#include <cblas.h>
// Thread control of the OpenBLAS build (pthread variant on Debian).
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
