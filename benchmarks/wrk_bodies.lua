-- POSTs one form body per request from a file, in order: each assertion or refresh
-- token is single-use, so a body is never sent twice (run wrk with -t1).
local bodies = {}
local i = 0

init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end

request = function()
  i = i + 1
  if i > #bodies then i = 1 end
  return wrk.format("POST", nil,
    {["Content-Type"] = "application/x-www-form-urlencoded"}, bodies[i])
end
