// `strata chat -m MODEL`: an interactive conversation using the model's chat template. Each turn feeds only
// the tokens the KV cache does not hold yet. Ctrl-C stops a reply (not the program); Ctrl-C at the prompt, or
// end of input (Ctrl-D), exits.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>

#include "cli/command.h"
#include "cli/generation_flags.h"
#include "core/error.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "runtime/session.h"
#include "sample/sampler.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace strata::cli {
namespace {

std::atomic<bool> g_interrupt{false};

void on_sigint(int) { g_interrupt.store(true); }

struct ChatOptions {
  GenerationFlags gen;
  std::string chat_template;
  std::string system_prompt;
};

enum class ReadStatus { kLine, kEnd, kInterrupted };

// Reads one line from stdin, so that Ctrl-C is seen while waiting: SIGINT stays blocked except inside
// ppoll(), which checks the flag and waits atomically (no Ctrl-C can slip in between). A line ending in '\'
// continues on the next one.
class LineReader {
 public:
  ReadStatus read(std::string& line) {
    line.clear();
    for (;;) {
      if (const size_t nl = buf_.find('\n'); nl != std::string::npos) {
        std::string part = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (!part.empty() && part.back() == '\r') part.pop_back();
        if (!part.empty() && part.back() == '\\') {
          part.back() = '\n';
          line += part;
          continue;
        }
        line += part;
        return ReadStatus::kLine;
      }
      if (eof_) {
        if (buf_.empty() && line.empty()) return ReadStatus::kEnd;
        line += buf_;
        buf_.clear();
        return ReadStatus::kLine;
      }
      if (!wait_readable()) return ReadStatus::kInterrupted;
      char tmp[4096];
      const ssize_t n = ::read(STDIN_FILENO, tmp, sizeof tmp);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) eof_ = true;
      else buf_.append(tmp, static_cast<size_t>(n));
    }
  }

 private:
  // Waits until stdin has data or is closed; false when Ctrl-C came first.
  static bool wait_readable() {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &old);
    bool ok = true;
    for (;;) {
      if (g_interrupt.load()) { ok = false; break; }
      pollfd pfd{STDIN_FILENO, POLLIN, 0};
      sigset_t wait_mask = old;
      sigdelset(&wait_mask, SIGINT);
      const int r = ::ppoll(&pfd, 1, nullptr, &wait_mask);
      if (r > 0) break;
      if (r < 0 && errno != EINTR) break;  // let read() report the problem
    }
    sigprocmask(SIG_SETMASK, &old, nullptr);
    return ok;
  }

  bool eof_ = false;
 private:
  std::string buf_;
};

int chat(ChatOptions& o) {
  resolve_flags(o.gen);
  const std::string path = resolve_model(o.gen.model);
  auto model = model::Model::load(path, {.prepare_kernels = true, .progress = true});
  auto tok = Tokenizer::from_gguf(model->file());

  std::string tmpl_source = o.chat_template;
  if (tmpl_source.empty()) tmpl_source = model->file().get_string("tokenizer.chat_template", "");
  if (tmpl_source.empty()) {
    std::string names;
    for (const std::string& n : ChatTemplate::family_names()) names += (names.empty() ? "" : ", ") + n;
    fail("this model has no chat template (tokenizer.chat_template): pass --chat-template NAME (one of {})", names);
  }
  const ChatTemplate tmpl = ChatTemplate::detect(tmpl_source);
  runtime::Session session(*model, session_config(o.gen, model.get()));
  Sampler sampler(o.gen.sampling, static_cast<int32_t>(session.n_vocab()));
  if (o.gen.verbose) std::fprintf(stderr, "strata: %s\n", model->describe().c_str());

  const bool interactive = ::isatty(STDIN_FILENO);
  if (interactive)
    std::fprintf(stderr, "strata: chat with %s (template %s). Ctrl-C stops a reply; Ctrl-C here or Ctrl-D exits.\n",
                 path.c_str(), tmpl.name().c_str());

  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a read() waiting at the prompt returns EINTR
  sigaction(SIGINT, &sa, nullptr);

  std::vector<ChatMessage> messages;
  if (!o.system_prompt.empty()) messages.push_back({"system", o.system_prompt});
  LineReader reader;
  std::string line;
  int turn = 0;
  for (;;) {
    if (interactive) {
      std::fputs("\n> ", stdout);
      std::fflush(stdout);
    }
    // A Ctrl-C that arrived after the last reply ended counts as one at the prompt.
    const ReadStatus st = g_interrupt.load() ? ReadStatus::kInterrupted : reader.read(line);
    if (st != ReadStatus::kLine) {
      if (interactive) std::fputc('\n', stdout);
      break;
    }
    if (line.find_first_not_of(" \t\n") == std::string::npos) continue;
    ++turn;
    messages.push_back({"user", line});
    const std::string text = tmpl.apply(messages, /*add_generation_prompt=*/true);
    const std::vector<int32_t> ids = tok->encode(text, /*add_special=*/true, /*parse_special=*/true);
    if (static_cast<int64_t>(ids.size()) >= session.n_ctx())
      fail("the conversation is {} tokens: raise --ctx to at least {}", ids.size(), ids.size() + 1);

    runtime::GenerateParams gp;
    gp.n_predict = o.gen.n_predict;
    gp.ignore_eos = o.gen.ignore_eos;
    gp.stop_strings = tmpl.stop_strings();
    gp.interrupt = &g_interrupt;
    gp.text_start = true;
    const runtime::GenerateResult r = runtime::generate(session, *tok, sampler, ids, gp, [](std::string_view s) {
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    });
    g_interrupt.store(false);  // this Ctrl-C stopped the reply; it does not end the program
    std::fputc('\n', stdout);
    std::fflush(stdout);
    messages.push_back({"assistant", r.text});
    if (o.gen.verbose) {
      const double tg = r.gen_seconds > 0 ? static_cast<double>(r.n_generated) / r.gen_seconds : 0;
      std::fprintf(stderr, "strata: turn %d: prompt %lld tokens (%lld new), generated %lld tokens, %.1f tok/s, stop: %s\n",
                   turn, static_cast<long long>(r.n_prompt), static_cast<long long>(r.n_prompt_fed),
                   static_cast<long long>(r.n_generated), tg, runtime::stop_reason_name(r.stop));
    }
  }
  if (o.gen.verbose)
    std::fprintf(stderr, "strata: %d turns, peak memory %s\n", turn,
                 format_bytes(static_cast<double>(runtime::peak_rss_bytes())).c_str());
  return 0;
}

const Command kCmd{"chat", "chat with a model using its chat template (Ctrl-C stops a reply, Ctrl-D exits)",
                   [](CLI::App& sub) -> RunFn {
                     auto o = std::make_shared<ChatOptions>();
                     sub.add_option("--chat-template", o->chat_template,
                                    "template family (llama2, llama3, chatml, mistral, gemma, phi3) or Jinja text "
                                    "(default: the model's tokenizer.chat_template)");
                     sub.add_option("--system-prompt", o->system_prompt, "a system message to start with");
                     add_generation_flags(sub, o->gen);
                     return [o] { return chat(*o); };
                   }};

}  // namespace
}  // namespace strata::cli
