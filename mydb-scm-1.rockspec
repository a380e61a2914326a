rockspec_format = "3.0"
package = "mydb"
version = "scm-1"
source = { url = "git+https://example.invalid/mydb.git" }
description = {
  summary = "A git-inspired versioned database: C core, Lua 5.4 API",
  detailed = [[
Every change is an immutable snapshot addressed by its SHA-256 digest;
identical content is stored once; history stays reachable; tenants are
isolated; record collections are prolly trees of shared pieces.]],
  license = "MIT",
}
dependencies = { "lua >= 5.4, < 5.5" }
external_dependencies = {
  CRYPTO = { header = "openssl/evp.h", library = "crypto" },
}
-- `luarocks make` in a checkout builds with the Makefile (target `module`,
-- which does not try to install Debian packages) and installs the Lua
-- modules, mydb/core.so, mydb-lua, mydb and the man pages into the rocks
-- tree: every file under the rock's own directories (BINDIR is deployed
-- into the tree's bin/), so `luarocks make --tree DIR` needs no root.
build = {
  type = "make",
  build_target = "module",
  build_variables = {
    LUA_INC = "$(LUA_INCDIR)",
    OPT = "$(CFLAGS)",
  },
  install_target = "install",
  install_variables = {
    LUA_SHARE = "$(LUADIR)",
    LUA_CMOD = "$(LIBDIR)",
    BINDIR = "$(BINDIR)",
    MANDIR = "$(DOCDIR)/man",
    LUA_INC = "$(LUA_INCDIR)",
  },
}
