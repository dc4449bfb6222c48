// `strata tokenize`: text -> token ids with a model's tokenizer, printed as llama.cpp's llama-tokenize does.
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "cli/command.h"
#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace strata::cli {
namespace {

struct TokenizeOptions {
  std::string model, prompt, file;
  bool has_prompt = false, has_file = false;
  bool ids = false, no_bos = false, parse_special = false, show_count = false, no_escape = false;
};

// llama.cpp's string_process_escapes: \n \r \t \' \" \\ and \xHH; any other backslash stays as written.
std::string process_escapes(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '\\' || i + 1 >= in.size()) {
      out += in[i];
      continue;
    }
    const char c = in[++i];
    switch (c) {
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case 'x':
        if (i + 2 < in.size() && std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
          out += static_cast<char>(std::strtol(in.substr(i + 1, 2).c_str(), nullptr, 16));
          i += 2;
          break;
        }
        [[fallthrough]];
      default:
        out += '\\';
        out += c;
    }
  }
  return out;
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open prompt file '{}': check the path given to -f", path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

int run_tokenize(const TokenizeOptions& o) {
  std::string model = o.model.empty() ? default_model_path() : o.model;
  if (model.empty())
    fail("no model given and no default model found: pass -m MODEL.gguf (or set STRATA_MODEL)");
  if (!o.has_prompt && !o.has_file) fail("no text to tokenize: pass -p TEXT or -f FILE");

  const gguf::File f = gguf::File::open(model);
  const std::unique_ptr<Tokenizer> tok = Tokenizer::from_gguf(f);

  std::string text = o.has_file ? read_text_file(o.file) : o.prompt;
  if (!o.has_file && !o.no_escape) text = process_escapes(text);  // files are taken as they are

  // As llama-tokenize: --no-bos turns off everything add_special adds (BOS, and EOS for models that add one).
  const bool add_special = tok->add_bos() && !o.no_bos;
  const std::vector<TokenId> ids = tok->encode(text, add_special, o.parse_special);

  if (o.ids) {
    std::string line = "[";
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) line += ", ";
      line += std::to_string(ids[i]);
    }
    line += "]\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
  } else {
    for (TokenId id : ids) {
      const std::string piece = tok->token_to_piece(id, /*render_special=*/true);
      std::printf("%6d -> '", id);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::printf("'\n");
    }
  }
  if (o.show_count) std::printf("Total number of tokens: %zu\n", ids.size());
  return 0;
}

RunFn setup_tokenize(CLI::App& sub) {
  auto o = std::make_shared<TokenizeOptions>();
  sub.add_option("-m,--model", o->model, "GGUF model whose tokenizer to use (default: $STRATA_MODEL or stories260K)");
  auto* p = sub.add_option("-p,--prompt", o->prompt, "text to tokenize (escapes like \\n are processed)");
  auto* fo = sub.add_option("-f,--file", o->file, "read the text to tokenize from FILE");
  p->excludes(fo);
  sub.add_flag("--ids", o->ids, "print only the ids, as a list on one line: [1, 15043, 3186]");
  sub.add_flag("--no-bos", o->no_bos, "do not add the BOS token (nor EOS) the model normally adds");
  sub.add_flag("--parse-special", o->parse_special, "recognise special-token texts such as <s> or <|im_start|>");
  sub.add_flag("--show-count", o->show_count, "print the number of tokens at the end");
  sub.add_flag("--no-escape", o->no_escape, "take \\n, \\t, \\xHH ... in -p TEXT literally");
  return [o, p, fo] {
    o->has_prompt = p->count() > 0;
    o->has_file = fo->count() > 0;
    return run_tokenize(*o);
  };
}

const Command kCmd{"tokenize", "convert text to token ids with a model's tokenizer", setup_tokenize};

}  // namespace
}  // namespace strata::cli
