// Ties a child process's life to its parent's (compare runs its steps as child processes).
#include "aqkernels.h"
#if defined(__linux__)
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>
#endif

int aq_die_with_parent(int parent_pid) {
#if defined(__linux__)
    // SIGKILL when the parent dies (kill -9 included); if it died before this call, the process
    // has been re-parented already: report it so the caller exits.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return -1;
    return getppid() == parent_pid ? 0 : 1;
#else
    (void)parent_pid;
    return 0;  // elsewhere a step outlives a killed compare; its output lock still keeps it alone
#endif
}
