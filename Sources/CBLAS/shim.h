// OpenBLAS's CBLAS interface plus its thread-control extensions
// (openblas_set_num_threads, openblas_get_num_threads, openblas_get_config).
#include <cblas.h>
