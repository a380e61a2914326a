# src/cli/cli.mk - mydb-lua, the standalone interpreter (included by the
# main Makefile, which defines CC, CFLAGS_ALL, LUA, LUA_LIB, LDLIBS_CORE,
# SAN, BUILD, LMOD_OBJ, LUA_SRC and HANDLER_SRC).
#
#   make mydb-lua            build ./mydb-lua (also part of `make all`)
#   make mydb-lua READLINE=0 build without readline (plain line input)
#   make test-cli            run the mydb-lua specs (spec/cli)
#   make install             also installs $(BINDIR)/mydb-lua, the link
#                            $(BINDIR)/mydb and the man pages (MANDIR/man1)
#
# `mydb` is a symbolic link to mydb-lua: run under that name, the program
# hands its command line to the embedded dispatcher "mydb.cmd"
# (src/cli/mydb_cmd.lua and the src/cli/cmd_*.lua modules).

# Readline: on when its header is found (Debian: libreadline-dev).
READLINE ?= $(if $(wildcard /usr/include/readline/readline.h),1,0)
ifeq ($(READLINE),1)
CLI_DEFS = -DMYDB_USE_READLINE
CLI_LIBS = -lreadline
endif

CLI_SRC = src/cli/mydb_lua.c src/cli/run.c src/cli/args.c src/cli/setup.c src/cli/repl.c \
          src/cli/complete.c src/cli/pretty.c src/cli/preload.c
CLI_OBJ = $(CLI_SRC:src/cli/%.c=$(BUILD)/cli/%.o) $(BUILD)/cli/embedded.o

# The embedded Lua modules: NAME=PATH pairs for embed.lua. init.lua is
# "mydb", lua/mydb/x.lua "mydb.x", handlers/x.lua "mydb.handlers.x", and
# src/cli/cli.lua the program's own "mydb.cli".
CLI_EMBED = $(foreach f,$(sort $(LUA_SRC)),$(if $(filter init.lua,$(notdir $(f))),mydb,mydb.$(basename $(notdir $(f))))=$(f)) \
            $(foreach f,$(sort $(HANDLER_SRC)),mydb.handlers.$(basename $(notdir $(f)))=$(f)) \
            mydb.cli=src/cli/cli.lua \
            $(foreach f,$(CMD_LUA),$(subst _,.,$(subst mydb_cmd,mydb.cmd,$(subst cmd_,mydb.cmd.,$(basename $(notdir $(f))))))=$(f))

# The `mydb` command's modules: mydb_cmd.lua is "mydb.cmd", cmd_X.lua "mydb.cmd.X".
CMD_LUA = src/cli/mydb_cmd.lua $(sort $(wildcard src/cli/cmd_*.lua))
MAN1 = doc/man/mydb.1 doc/man/mydb-lua.1

# A module removed from lua/ or handlers/ changes no file's time: this list,
# rewritten at parse time only when it changes, makes it visible to make.
CLI_EMBED_LIST = $(BUILD)/cli/embed.list
ifeq ($(filter clean,$(MAKECMDGOALS)),)
$(shell mkdir -p $(BUILD)/cli && (test -f $(CLI_EMBED_LIST) && test "$$(cat $(CLI_EMBED_LIST))" = "$(CLI_EMBED)" || echo "$(CLI_EMBED)" > $(CLI_EMBED_LIST)))
endif

.PHONY: install-cli uninstall-cli clean-cli test-cli

all: mydb-lua mydb $(BUILD)/cli/ptyrun

mydb: mydb-lua
	ln -sf mydb-lua $@

mydb-lua: $(CLI_OBJ) $(LMOD_OBJ) $(BUILD)/libmydb.a
	$(CC) $(SAN) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LMOD_OBJ) $(BUILD)/libmydb.a \
	  $(LUA_LIB) $(CLI_LIBS) $(LDLIBS_CORE) -lm -ldl

$(BUILD)/cli:
	mkdir -p $@

$(BUILD)/cli/%.o: src/cli/%.c src/cli/cli.h include/mydb.h | $(BUILD)/cli
	$(CC) $(CFLAGS_ALL) $(CLI_DEFS) -Isrc/cli -c $< -o $@

$(BUILD)/cli/embedded.o: $(BUILD)/cli/embedded.c src/cli/cli.h
	$(CC) $(CFLAGS_ALL) -Isrc/cli -c $< -o $@

$(BUILD)/cli/embedded.c: src/cli/embed.lua $(LUA_SRC) $(HANDLER_SRC) src/cli/cli.lua $(CMD_LUA) \
                         $(CLI_EMBED_LIST) | $(BUILD)/cli
	$(LUA) src/cli/embed.lua $@ $(CLI_EMBED)

test-cli: mydb-lua mydb $(BUILD)/cli/ptyrun
	$(LUA) /usr/bin/busted spec/cli

install: install-cli
install-cli: mydb-lua
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 mydb-lua $(DESTDIR)$(BINDIR)/mydb-lua
	ln -sf mydb-lua $(DESTDIR)$(BINDIR)/mydb
	install -d $(DESTDIR)$(MANDIR)/man1
	install -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/

uninstall: uninstall-cli
uninstall-cli:
	rm -f $(DESTDIR)$(BINDIR)/mydb-lua $(DESTDIR)$(BINDIR)/mydb
	rm -f $(DESTDIR)$(MANDIR)/man1/mydb.1 $(DESTDIR)$(MANDIR)/man1/mydb-lua.1

clean: clean-cli
clean-cli:
	rm -f mydb-lua mydb

# The pseudo-terminal driver of the interactive specs (not installed).
$(BUILD)/cli/ptyrun: src/cli/ptyrun.c | $(BUILD)/cli
	$(CC) $(CFLAGS_ALL) $< -o $@ -lutil
