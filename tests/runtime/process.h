// Running the built `strata` binary from a test: arguments, stdin, captured stdout/stderr, exit status, and
// signals sent while it runs. The binary is found beside the test binaries' folder (/proc/self/exe/../../strata).
#pragma once
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace strata::test {

inline std::string strata_binary() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  const auto p = exe.parent_path().parent_path() / "strata";
  return std::filesystem::exists(p, ec) ? p.string() : "";
}

class Process {
 public:
  // Starts `bin args...` with pipes on stdin, stdout and stderr; `env` entries ("K=V") are added.
  Process(const std::string& bin, const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    int in[2], out[2], err[2];
    if (pipe(in) != 0 || pipe(out) != 0 || pipe(err) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      dup2(err[1], 2);
      for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) close(fd);
      for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(bin.c_str()));
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    in_ = in[1];
    out_ = out[0];
    err_ = err[0];
    signal(SIGPIPE, SIG_IGN);
  }
  ~Process() {
    if (pid_ > 0 && status_ < 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    for (int fd : {in_, out_, err_})
      if (fd >= 0) close(fd);
  }

  void write_stdin(const std::string& s) {
    if (in_ >= 0 && !s.empty()) (void)::write(in_, s.data(), s.size());
  }
  void close_stdin() {
    if (in_ >= 0) close(in_);
    in_ = -1;
  }
  void signal_process(int sig) { kill(pid_, sig); }

  // Reads output until pred(stdout, stderr) holds or the timeout passes; true when it held.
  bool wait_for(const std::function<bool(const std::string&, const std::string&)>& pred, double timeout_s) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (!pred(out_text, err_text)) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !pump(static_cast<int>(left.count()))) return pred(out_text, err_text);
    }
    return true;
  }
  // Waits for the exit (killing it after the timeout); returns the exit code, or 128 + signal.
  int wait_exit(double timeout_s) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    wait_for([](const std::string&, const std::string&) { return false; }, timeout_s);
    int st = 0;
    while (waitpid(pid_, &st, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > end) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &st, 0);
        timed_out = true;
        break;
      }
      usleep(10000);
    }
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return status_;
  }

  std::string out_text, err_text;
  bool timed_out = false;

 private:
  // Reads what is available (waiting up to ms); false when both outputs are closed.
  bool pump(int ms) {
    pollfd fds[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
    int open = 0;
    for (auto& f : fds) open += f.fd >= 0;
    if (open == 0) return false;
    if (poll(fds, 2, ms) <= 0) return true;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      int& fd = i == 0 ? out_ : err_;
      if (n <= 0) {
        close(fd);
        fd = -1;
      } else {
        (i == 0 ? out_text : err_text).append(buf, static_cast<size_t>(n));
      }
    }
    return true;
  }

  pid_t pid_ = -1;
  int in_ = -1, out_ = -1, err_ = -1;
  int status_ = -1;
};

}  // namespace strata::test
