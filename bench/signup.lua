-- Signups with addresses unique per thread and request.
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
end
function init(args)
  n = 0
  run = os.time()
end
function request()
  n = n + 1
  local body = string.format('{"email":"bench-%d-%d-%d@example.com","password":"Corr3ct-horse-battery"}', run, tid, n)
  return wrk.format("POST", "/api/auth/signup", { ["Content-Type"] = "application/json" }, body)
end
