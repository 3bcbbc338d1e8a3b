-- POSTs one form body per request from a file, in order: each assertion or refresh
-- token is single-use, so a body is never sent twice (run wrk with -t1).
-- An optional second argument is sent as the Authorization header (broker hooks).
local bodies = {}
local i = 0
local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}

init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  if args[2] then headers["Authorization"] = args[2] end
end

request = function()
  i = i + 1
  if i > #bodies then i = 1 end
  return wrk.format("POST", nil, headers, bodies[i])
end
