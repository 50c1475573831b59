-- wrk script: announces with a random peer_id, port and `left`, spread over
-- the swarms listed (one percent-encoded info_hash per line) in the file
-- named by the environment variable SWARMS. CLOSE=1 adds `Connection: close`
-- so each announce is a fresh connection, as real clients announce once per
-- interval.
local swarms = {}

local function hex_to_escaped(hex)
  return (hex:gsub("..", function(byte) return "%" .. byte:upper() end))
end

function init(args)
  for line in io.lines(os.getenv("SWARMS")) do
    if #line == 40 then swarms[#swarms + 1] = hex_to_escaped(line) end
  end
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
  if os.getenv("CLOSE") == "1" then wrk.headers["Connection"] = "close" end
end

local function random_id()
  local bytes = {}
  for i = 1, 20 do bytes[i] = string.format("%%%02X", math.random(0, 255)) end
  return table.concat(bytes)
end

function request()
  local path = "/announce?info_hash=" .. swarms[math.random(#swarms)]
    .. "&peer_id=" .. random_id()
    .. "&port=" .. math.random(1024, 65535)
    .. "&uploaded=0&downloaded=0&left=" .. math.random(0, 1000000)
    .. "&compact=1&numwant=50&event=started"
  return wrk.format("GET", path)
end
