// Open MPI for aqbert's process group (AQParallel). MPI's handles (MPI_COMM_WORLD, MPI_FLOAT,
// MPI_SUM, MPI_IN_PLACE, ...) are macros over global structs in Open MPI, which Swift cannot
// import; these inline functions name the few that aqbert uses.
#include <mpi.h>

static inline MPI_Comm aq_mpi_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype aq_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype aq_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype aq_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype aq_mpi_long(void) { return MPI_LONG_LONG; }
static inline MPI_Op aq_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op aq_mpi_min(void) { return MPI_MIN; }
static inline MPI_Op aq_mpi_max(void) { return MPI_MAX; }
static inline void *aq_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline int aq_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline MPI_Errhandler aq_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int aq_mpi_success(void) { return MPI_SUCCESS; }
static inline MPI_Status *aq_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Request aq_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline int aq_mpi_any_source(void) { return MPI_ANY_SOURCE; }
