-- wrk script: POST one chat completion per request (STREAM=1 in the environment: streamed).
-- Counts answers that are not 200 (wrk's own "Non-2xx" line says the same).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local stream = os.getenv("STREAM") == "1"
local model = os.getenv("MODEL_NAME") or "stories"
local tokens = os.getenv("TOKENS") or "16"
wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":' .. tokens ..
           ',"seed":1' .. (stream and ',"stream":true' or '') .. '}'
