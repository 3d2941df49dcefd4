// Threads, fork/exec, pipes and signals under the sandbox's seccomp profile.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

long parallel_sum(int threads, long n) {
  std::atomic<long> total{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; t++)
    pool.emplace_back([&, t] { long s = 0; for (long i = t; i < n; i += threads) s += i; total += s; });
  for (auto &th : pool) th.join();
  return total;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "test")) {
    if (parallel_sum(8, 1000000) != 499999500000L) { puts("FAIL sum"); return 1; }
    int fds[2];
    if (pipe(fds)) return 2;
    pid_t pid = fork();
    if (pid == 0) { close(fds[0]); dup2(fds[1], 1); execlp("echo", "echo", "child", (char *)nullptr); _exit(127); }
    close(fds[1]);
    char buf[16] = {0};
    read(fds[0], buf, sizeof buf - 1);
    int status;
    waitpid(pid, &status, 0);
    if (strcmp(buf, "child\n")) { puts("FAIL pipe"); return 1; }
    pid = fork();
    if (pid == 0) { pause(); _exit(0); }
    kill(pid, SIGUSR1);
    waitpid(pid, &status, 0);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGUSR1) { puts("FAIL signal"); return 1; }
    puts("cpp tests passed");
    return 0;
  }
  printf("sum %ld\n", parallel_sum(4, 1000));
  return 0;
}
