-- One client per wrk thread, each renaming the profile of its own account, so streams never
-- contend. The token and profile of client N come from CLIENTS_FILE (one "token profile" a line).
local clients = {}
for line in io.lines(os.getenv("CLIENTS_FILE")) do
  local token, profile = line:match("(%S+)%s+(%S+)")
  clients[#clients + 1] = { token = token, profile = profile }
end
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("client", next_id)
end

function init(args)
  me = clients[client]
  n = 0
end

function request()
  n = n + 1
  local body = string.format('{"name":"name %d"}', n)
  return wrk.format("PATCH", "/api/profiles/" .. me.profile, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. me.token,
  }, body)
end

function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
  end
end
