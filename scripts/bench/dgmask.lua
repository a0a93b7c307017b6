-- The peer datagate is measured against (scripts/bench-mask, variant c):
-- the same masking written the way OpenResty / Kong / APISIX plugins do it,
-- as an ngx_lua body filter with lua-cjson.  It buffers the whole body,
-- decodes it, walks the tree, masks the four classified keys with the same
-- methods as scripts/bench/policy.yaml and encodes the result.
--
--   header_filter_by_lua_block { require("dgmask").header_filter() }
--   body_filter_by_lua_block   { require("dgmask").body_filter() }
--
-- Benchmark code, not a product: it fails closed (an undecodable body is
-- replaced by nothing and logged) but does no content-type checks.

local cjson = require "cjson.safe"

local concat = table.concat
local sub = string.sub
local rep = string.rep
local type = type
local pairs = pairs
local tostring = tostring

local M = {}

local byte = string.byte

-- byte offset just past the first n UTF-8 characters of s, and whether s
-- has more characters after them (a byte loop: LuaJIT compiles it)
local function prefix(s, n)
    local len, i, c = #s, 1, 0
    while i <= len do
        local b = byte(s, i)
        if b < 0x80 or b >= 0xC0 then       -- a lead byte
            if c == n then
                return i - 1, true
            end
            c = c + 1
        end
        i = i + 1
    end
    return len, false
end

-- number of UTF-8 characters in s
local function nchars(s)
    local len, c = #s, 0
    for i = 1, len do
        local b = byte(s, i)
        if b < 0x80 or b >= 0xC0 then
            c = c + 1
        end
    end
    return c
end

local methods = {
    -- 450102199003071234 -> 450102********1234
    id_card = function(s)
        local n = #s
        if n <= 10 then return rep("*", n) end
        return sub(s, 1, 6) .. rep("*", n - 10) .. sub(s, -4)
    end,
    -- 13812345678 -> 138****5678
    phone = function(s)
        local n = #s
        if n <= 7 then return rep("*", n) end
        return sub(s, 1, 3) .. rep("*", n - 7) .. sub(s, -4)
    end,
    -- 张三丰 -> 张** (one * per hidden character)
    name = function(s)
        local n = nchars(s)
        if n <= 1 then return rep("*", n) end
        local cut = prefix(s, 1)
        return sub(s, 1, cut) .. rep("*", n - 1)
    end,
    -- first 6 characters, then ****
    address = function(s)
        local cut = prefix(s, 6)
        return sub(s, 1, cut) .. "****"
    end,
}

local fields = {
    id_card = methods.id_card,
    name = methods.name,
    phone = methods.phone,
    address = methods.address,
}

-- mask every scalar under a classified key
local function mask_all(v, f)
    local tv = type(v)
    if tv == "string" then
        return f(v)
    elseif tv == "number" then
        return f(tostring(v))
    elseif tv == "table" then
        for k, x in pairs(v) do
            v[k] = mask_all(x, f)
        end
        return v
    end
    return v            -- booleans and null stay
end

local function walk(t, depth)
    if depth > 64 then
        return false
    end
    for k, v in pairs(t) do
        local f = type(k) == "string" and fields[k]
        if f then
            t[k] = mask_all(v, f)
        elseif type(v) == "table" then
            if not walk(v, depth + 1) then
                return false
            end
        end
    end
    return true
end

function M.header_filter()
    ngx.header.content_length = nil
end

function M.body_filter()
    local ctx = ngx.ctx
    local chunk, eof = ngx.arg[1], ngx.arg[2]
    local buf = ctx.dgmask_buf

    if buf == nil then
        buf = {}
        ctx.dgmask_buf = buf
    end

    if chunk ~= "" then
        buf[#buf + 1] = chunk
    end

    if not eof then
        ngx.arg[1] = nil
        return
    end

    local body = concat(buf)
    ctx.dgmask_buf = nil

    local doc = cjson.decode(body)
    if type(doc) ~= "table" or not walk(doc, 1) then
        ngx.log(ngx.ERR, "dgmask: cannot mask response body, dropped")
        ngx.arg[1] = ""
        return
    end

    ngx.arg[1] = cjson.encode(doc)
end

return M
