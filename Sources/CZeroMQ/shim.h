#include <zmq.h>
#include <signal.h>
#include <sys/prctl.h>

/* A supervised worker process dies with its daemon: the kernel sends it
   SIGKILL when the thread that started it ends (prctl is variadic, which
   Swift cannot call directly). Returns 0 on success, -1 with errno set. */
static inline int pilot_die_with_parent(void) {
    return prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
}
