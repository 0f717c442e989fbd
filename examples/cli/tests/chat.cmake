# `chorus chat` driven through a pipe, as a script or a test harness would drive it (ctest:
# cli.chat). Checks the /commands, the conversation kept between turns, --quiet, plain output
# (no colour codes) off a terminal, and the exit codes of docs/cli.md.
#   cmake -DCHORUS=<chorus binary> -DMODEL=<model.gguf> -DWORK=<scratch dir> -P chat.cmake
foreach(var CHORUS MODEL WORK)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "chat.cmake: -D${var}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")

function(expect what haystack needle)
  string(FIND "${haystack}" "${needle}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${what}: expected to find\n  ${needle}\nin\n${haystack}")
  endif()
endfunction()

file(WRITE "${WORK}/input.txt" "/system You tell stories.
Once upon a time
/history
/undo
/history
//slash first
/bogus
/save ${WORK}/conversation.json
/quit
this line is never read
")
execute_process(COMMAND "${CHORUS}" chat "${MODEL}" -n 6 --seed 3 INPUT_FILE "${WORK}/input.txt"
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "chorus chat exited with ${rc}\n${err}")
endif()
expect("stderr" "${err}" "[chat format chatml")
expect("stderr" "${err}" "[system message set; conversation reset]")
expect("stderr" "${err}" "prompt tokens at ")
expect("stdout (first /history)" "${out}" "system: You tell stories.\nuser: Once upon a time\nassistant: ")
expect("stderr" "${err}" "[last exchange forgotten]")
expect("stdout (/history after /undo)" "${out}" "\nsystem: You tell stories.\n")
expect("stderr" "${err}" "error: unknown command /bogus; /help lists the commands")
string(ASCII 27 esc)
string(FIND "${out}${err}" "${esc}[" escape)
if(NOT escape EQUAL -1)
  message(FATAL_ERROR "colour codes in output that is not a terminal")
endif()
# The saved conversation: the system message, the '//' message sent as '/slash first', its answer.
file(READ "${WORK}/conversation.json" saved)
string(JSON count LENGTH "${saved}" messages)
string(JSON role GET "${saved}" messages 1 role)
string(JSON content GET "${saved}" messages 1 content)
string(JSON format GET "${saved}" chat_format)
if(NOT count EQUAL 3 OR NOT role STREQUAL "user" OR NOT content STREQUAL "/slash first" OR NOT format STREQUAL "chatml")
  message(FATAL_ERROR "saved conversation: ${saved}")
endif()

# --quiet: the answers and nothing else; end of input ends the chat with 0.
file(WRITE "${WORK}/quiet.txt" "Hello\n")
execute_process(COMMAND "${CHORUS}" chat "${MODEL}" -n 4 --quiet INPUT_FILE "${WORK}/quiet.txt"
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT err STREQUAL "" OR out STREQUAL "")
  message(FATAL_ERROR "--quiet: exit ${rc}, stderr '${err}', stdout '${out}'")
endif()

# Exit codes: 2 for a usage mistake, 1 for an error chorus reports (naming the file).
execute_process(COMMAND "${CHORUS}" chat INPUT_FILE "${WORK}/quiet.txt" ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 2)
  message(FATAL_ERROR "no model: exit ${rc}, expected 2\n${err}")
endif()
execute_process(COMMAND "${CHORUS}" chat "${WORK}/missing.gguf" INPUT_FILE "${WORK}/quiet.txt" ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 1)
  message(FATAL_ERROR "missing model: exit ${rc}, expected 1\n${err}")
endif()
expect("stderr (missing model)" "${err}" "missing.gguf")
