/*
 * berth-sigwait: what stays resident in an lb-pod once bin/berth-lb-pod has put its rules in place.
 *
 *   berth-sigwait COMMAND [ARG...]
 *
 * Blocks SIGTERM and SIGINT, waits for one of them (sigwait: the process sleeps in the kernel, no timer, no
 * polling), then execs COMMAND with its arguments: the entrypoint passes `berth-wait --stop`, the shell that removes
 * the rules and decides the exit code (docs/design/0001-lb-pod-hands-over-to-a-shell-waiter.md). Why C and not the
 * shell waiting itself: a waiting static busybox sh kept ~1.7 MiB resident (its own text pages) where this keeps a
 * few pages (docs/design/0013-the-controller-renders-lb-pod-rules.md, "The resident waiter").
 *
 * The signals are blocked first thing, so one that arrives while it starts stays pending and is taken by sigwait
 * (and as a container's PID 1, where a signal at its default disposition is dropped, a blocked one is not). The
 * mask is inherited by COMMAND: the cleanup is not cut short by a second SIGTERM (the shell ignores them anyway).
 * Built statically (musl where available) by scripts/build-lb-pod-rootfs.sh; no stdio, so no buffers to map.
 */
#include <signal.h>
#include <string.h>
#include <unistd.h>

static void say(const char *a, const char *b) {
  (void)!write(2, a, strlen(a));
  (void)!write(2, b, strlen(b));
  (void)!write(2, "\n", 1);
}

int main(int argc, char **argv) {
  sigset_t set;
  int sig = 0;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (sigprocmask(SIG_BLOCK, &set, 0) != 0) {
    say("berth-sigwait: cannot block SIGTERM and SIGINT", "");
    return 1;
  }
  if (argc < 2) {
    say("berth-sigwait: usage: berth-sigwait COMMAND [ARG...] (the command to exec on SIGTERM or SIGINT)", "");
    return 2;
  }
  while (sigwait(&set, &sig) != 0) {
  }
  execvp(argv[1], argv + 1);
  say("berth-sigwait: cannot exec ", argv[1]);
  return 1;
}
