#include "core/tokenizer/chat_template.h"

#include <nlohmann/json.hpp>

namespace moemesh::tok {
namespace {

const std::string kDeepSeekV3Template = R"TPL({% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}{%- else %}{% set ns.system_prompt = ns.system_prompt + '

' + message['content'] %}{%- endif %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '
' + '```json' + '
' + tool['function']['arguments'] + '
' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'
' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '
' + '```json' + '
' + tool['function']['arguments'] + '
' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else %}{{'
<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %})TPL";

// R1's template is V3's with two changes: an assistant turn's text keeps only
// what follows its last "</think>", and the generation prompt opens "<think>\n".
std::string r1_source() {
  std::string s = kDeepSeekV3Template;
  auto swap = [&](const std::string& from, const std::string& to) {
    const size_t at = s.find(from);
    if (at == std::string::npos) throw TokenizerError("chat template source: '" + from + "' not found");
    s.replace(at, from.size(), to);
  };
  swap("{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}",
       "{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = "
       "content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}");
  swap("{{'<｜Assistant｜>'}}{% endif %}", "{{'<｜Assistant｜><think>\n'}}{% endif %}");
  return s;
}

const std::string& text_field(const nlohmann::json& m, size_t i, const char* key) {
  if (!m.contains(key) || !m[key].is_string())
    throw TokenizerError("messages[" + std::to_string(i) + "]." + key + " must be a string");
  return m[key].get_ref<const std::string&>();
}

}  // namespace

const std::string& ChatTemplate::deepseek_v3_source() { return kDeepSeekV3Template; }
const std::string& ChatTemplate::deepseek_r1_source() {
  static const std::string s = r1_source();
  return s;
}

ChatTemplate ChatTemplate::deepseek_v3(std::string bos_token) { return ChatTemplate(std::move(bos_token), false); }
ChatTemplate ChatTemplate::deepseek_r1(std::string bos_token) { return ChatTemplate(std::move(bos_token), true); }

ChatTemplate ChatTemplate::for_tokenizer(const Tokenizer& tok) {
  // Published copies write a newline in a Jinja string either as itself or as
  // the escape \n: the same template to Jinja, so both are recognized.
  auto plain = [](std::string t) {
    for (size_t at = 0; (at = t.find("\\n", at)) != std::string::npos;) t.replace(at, 2, "\n");
    return t;
  };
  const std::string mine = plain(tok.chat_template());
  if (mine == plain(kDeepSeekV3Template)) return deepseek_v3(tok.bos_token());
  if (mine == plain(deepseek_r1_source())) return deepseek_r1(tok.bos_token());
  throw TokenizerError(tok.chat_template().empty() ? "the tokenizer has no chat template"
                                                   : "the tokenizer's chat template is neither DeepSeek-V3's nor DeepSeek-R1's, "
                                                     "the ones rendered here");
}

std::string ChatTemplate::render(const nlohmann::json& messages, bool add_generation_prompt) const {
  if (!messages.is_array()) throw TokenizerError("messages must be an array");
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw TokenizerError("messages[" + std::to_string(i) + "].role must be a string");
    const std::string& role = m["role"].get_ref<const std::string&>();
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
      throw TokenizerError("messages[" + std::to_string(i) + "].role '" + role + "' is not system, user, assistant or tool");
    const bool null_content = role == "assistant" && m.contains("content") && m["content"].is_null();
    if (!null_content) text_field(m, i, "content");
    if (null_content) {
      if (!m.contains("tool_calls") || !m["tool_calls"].is_array())
        throw TokenizerError("messages[" + std::to_string(i) + "]: an assistant message without content needs tool_calls");
      for (size_t k = 0; k < m["tool_calls"].size(); ++k) {
        const auto& t = m["tool_calls"][k];
        const std::string where = "messages[" + std::to_string(i) + "].tool_calls[" + std::to_string(k) + "]";
        if (!t.is_object() || !t.contains("type") || !t["type"].is_string() || !t.contains("function") ||
            !t["function"].is_object() || !t["function"].contains("name") || !t["function"]["name"].is_string() ||
            !t["function"].contains("arguments") || !t["function"]["arguments"].is_string())
          throw TokenizerError(where + " needs type, function.name and function.arguments (a JSON string)");
      }
    }
  }

  // The template's namespace variables.
  bool is_first = false, is_tool = false, is_output_first = true, is_first_sp = true;
  std::string system_prompt;
  for (const auto& m : messages) {
    if (m["role"] != "system") continue;
    if (!is_first_sp) system_prompt += "\n\n";
    system_prompt += m["content"].get<std::string>();
    is_first_sp = false;
  }
  std::string out = bos_ + system_prompt;
  for (const auto& m : messages) {
    const std::string& role = m["role"].get_ref<const std::string&>();
    if (role == "user") {
      is_tool = false;
      out += "<｜User｜>" + m["content"].get<std::string>();
    }
    if (role == "assistant" && m["content"].is_null()) {
      is_tool = false;
      for (const auto& t : m["tool_calls"]) {
        const std::string call = t["type"].get<std::string>() + "<｜tool▁sep｜>" + t["function"]["name"].get<std::string>() +
                                 "\n```json\n" + t["function"]["arguments"].get<std::string>() + "\n```<｜tool▁call▁end｜>";
        if (!is_first) {
          out += "<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>" + call;
          is_first = true;
        } else {
          // As the template has it: every call after the conversation's first closes the call list.
          out += "\n<｜tool▁call▁begin｜>" + call + "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>";
        }
      }
    }
    if (role == "assistant" && !m["content"].is_null()) {
      if (is_tool) {
        out += "<｜tool▁outputs▁end｜>" + m["content"].get<std::string>() + "<｜end▁of▁sentence｜>";
        is_tool = false;
      } else {
        std::string content = m["content"].get<std::string>();
        if (const size_t end = content.rfind("</think>"); r1_ && end != std::string::npos) content = content.substr(end + 8);
        out += "<｜Assistant｜>" + content + "<｜end▁of▁sentence｜>";
      }
    }
    if (role == "tool") {
      is_tool = true;
      if (is_output_first) {
        out += "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>" + m["content"].get<std::string>() + "<｜tool▁output▁end｜>";
        is_output_first = false;
      } else {
        out += "\n<｜tool▁output▁begin｜>" + m["content"].get<std::string>() + "<｜tool▁output▁end｜>";
      }
    }
  }
  if (is_tool) out += "<｜tool▁outputs▁end｜>";
  if (add_generation_prompt && !is_tool) out += r1_ ? "<｜Assistant｜><think>\n" : "<｜Assistant｜>";
  return out;
}

}  // namespace moemesh::tok
