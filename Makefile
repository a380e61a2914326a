# mydb - a git-inspired versioned database: C core, Lua 5.4 API.
#
#   make quickstart   install what is missing, build, run examples/quickstart.lua
#   make test         install what is missing, build, run every test
#   make test-backends  the spec suite on each storage backend (loose, pack, memory,
#                     postgres on a throwaway cluster)
#   make bench        the benchmark (see bench/README.md)
#   make doc          doc/REFERENCE.md (the API reference) from the sources
#   make install PREFIX=/usr/local

# ---- editable settings -------------------------------------------------
PREFIX    ?= /usr/local
LUA       ?= lua5.4
LUA_INC   ?= /usr/include/lua5.4
LUA_LIB   ?= -llua5.4
CC        ?= cc
OPT       ?= -O2 -g
WARN      = -std=c11 -Wall -Wextra -Werror -Wshadow -Wpointer-arith \
            -Wcast-qual -Wstrict-prototypes -Wmissing-prototypes -Wundef \
            -Wformat=2 -Wvla
DEFS      = -D_GNU_SOURCE
SAN       ?=
# The include folders: the public headers, then each part of src/ (see
# doc/ARCHITECTURE.md; `make check-deps` keeps the parts free of cycles).
INCLUDES  = -Iinclude -Isrc/core -Isrc/os -Isrc/util -Isrc/format \
            -Isrc/backend/loose -Isrc/backend/pack -Isrc/lua \
            -I/usr/include/postgresql
CFLAGS_ALL = $(OPT) $(WARN) $(DEFS) $(SAN) -fPIC $(INCLUDES) -I$(LUA_INC) $(CFLAGS)
LDLIBS_CORE = -lcrypto -lpthread -lpq -lm

LUA_SHARE  = $(PREFIX)/share/lua/5.4
LUA_CMOD   = $(PREFIX)/lib/lua/5.4
# Programs and man pages (the rockspec points them into the rock's tree).
BINDIR     = $(PREFIX)/bin
MANDIR     = $(PREFIX)/share/man

# Debian packages the build and the tests need (installed by `make deps`).
DEB_PKGS = lua5.4 liblua5.4-dev lua-cjson libssl-dev lua-busted libreadline-dev strace luarocks libpq-dev postgresql

BUILD = build

# ---- sources -------------------------------------------------------------
# The C library (libmydb.a): the dispatch layer, OS utilities, data
# structures, formats and the backends. The Lua binding (mydb/core.so) and
# mydb-lua (src/cli/cli.mk) link it.
CORE_SRC = $(wildcard src/core/*.c src/os/*.c src/util/*.c src/format/*.c \
                      src/backend/*/*.c)
CORE_OBJ = $(CORE_SRC:%.c=$(BUILD)/%.o)
CORE_HDR = $(wildcard include/*.h include/mydb/sys/*.h src/*/*.h src/backend/*/*.h)
LMOD_SRC = $(wildcard src/lua/*.c)
LMOD_OBJ = $(LMOD_SRC:%.c=$(BUILD)/%.o)
LUA_SRC  = $(wildcard lua/mydb/*.lua)
HANDLER_SRC = $(wildcard handlers/*.lua)

# Where the tree's modules are staged so that `require "mydb"`,
# `require "mydb.core"` and `require "mydb.handlers.date"` work uncompiled.
STAGE = $(BUILD)/lua
export LUA_PATH  := $(CURDIR)/$(STAGE)/?.lua;$(CURDIR)/$(STAGE)/?/init.lua;;
export LUA_CPATH := $(CURDIR)/$(BUILD)/?.so;;


.PHONY: all module deps stage quickstart test check-deps test-c test-lua test-backends test-backends-run test-powerloss install uninstall clean bench doc

all: deps module

# The library, the Lua module and the staged Lua sources, without the
# dependency check (what the LuaRocks rockspec builds).
module: $(BUILD)/libmydb.a $(BUILD)/mydb/core.so stage

# ---- dependencies ----------------------------------------------------------
# Installs missing Debian packages when root; otherwise lists them and stops.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "mydb: installing Debian packages:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	  else \
	    echo "mydb: missing Debian packages:$$missing"; \
	    echo "mydb: run: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

# ---- build -------------------------------------------------------------------
$(BUILD)/src/%.o: src/%.c $(CORE_HDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/mydb:
	mkdir -p $@

$(BUILD)/libmydb.a: $(CORE_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/mydb/core.so: $(LMOD_OBJ) $(BUILD)/libmydb.a | $(BUILD)/mydb
	$(CC) $(SAN) -shared -o $@ $(LMOD_OBJ) $(BUILD)/libmydb.a $(LDLIBS_CORE) $(LDFLAGS)

# Symlinks, so that edits to lua/ and handlers/ need no rebuild.
stage:
	@mkdir -p $(STAGE)/mydb/handlers
	@for f in $(LUA_SRC); do ln -sf $(CURDIR)/$$f $(STAGE)/mydb/; done
	@for f in $(HANDLER_SRC); do ln -sf $(CURDIR)/$$f $(STAGE)/mydb/handlers/; done

# ---- run -----------------------------------------------------------------------
quickstart: all
	cd examples && $(LUA) quickstart.lua

test: all check-deps test-c test-lua

# No cycle between the C files, no arrow up the layers (tools/check_deps.lua,
# from the objects' symbol tables).
check-deps: all
	$(LUA) tools/check_deps.lua $(CORE_OBJ) $(LMOD_OBJ) $(CLI_OBJ)

# OOM_API_STRIDE: the step of N in test_oom_api's "api" case (its header).
OOM_API_STRIDE ?= 7
test-c: $(BUILD)/test_core $(BUILD)/test_backends $(BUILD)/test_oom $(BUILD)/test_oom_api
	$(BUILD)/test_core
	$(BUILD)/test_backends
	$(BUILD)/test_oom
	$(BUILD)/test_oom_api $(BUILD) test/test_oom_api.lua $(OOM_API_STRIDE)

$(BUILD)/test_core: test/test_core.c $(BUILD)/libmydb.a
	$(CC) $(CFLAGS_ALL) $< -o $@ $(BUILD)/libmydb.a $(LDLIBS_CORE)

$(BUILD)/test_backends: test/test_backends.c $(BUILD)/libmydb.a
	$(CC) $(CFLAGS_ALL) $< -o $@ $(BUILD)/libmydb.a $(LDLIBS_CORE)

# The Lua binding under allocation failures (links the binding's objects).
$(BUILD)/test_oom: test/test_oom.c $(LMOD_OBJ) $(BUILD)/libmydb.a
	$(CC) $(CFLAGS_ALL) $< -o $@ $(LMOD_OBJ) $(BUILD)/libmydb.a $(LUA_LIB) $(LDLIBS_CORE) -lm -ldl

# The same through the built module and the staged Lua API (loads
# $(BUILD)/mydb/core.so by package.cpath; also run by test-valgrind).
$(BUILD)/test_oom_api: test/test_oom_api.c $(BUILD)/mydb/core.so | stage
	$(CC) $(CFLAGS_ALL) $< -o $@ $(LUA_LIB) -ldl

# The spec files in SPEC_SHARDS groups at once (below); each group's output
# is printed whole, in order, when it ends.
test-lua: all
	tools/parallel $(BUSTED_SHARDS)

# The power-loss test (spec/powerloss/run.lua): crash states rebuilt from a
# strace of a workload under the weak POSIX model, on loose and pack, each
# also with two writer processes on one tenant (pack: group commit).
# POWERLOSS_MAX caps the states checked per backend (sampled evenly).
POWERLOSS_MAX ?= 1500
# Two scenarios at a time (tools/parallel: outputs printed in order).
test-powerloss: all
	tools/parallel "$(LUA) spec/powerloss/run.lua loose $(POWERLOSS_MAX)" \
	  "$(LUA) spec/powerloss/run.lua pack $(POWERLOSS_MAX)"
	tools/parallel "$(LUA) spec/powerloss/run.lua loose-concurrent $(POWERLOSS_MAX)" \
	  "$(LUA) spec/powerloss/run.lua pack-concurrent $(POWERLOSS_MAX)"

# The whole spec suite once per storage backend (spec/helper.lua reads
# MYDB_BACKEND), the backends at once (tools/parallel), and the C backend
# tests.
# postgres: against a throwaway cluster (tools/pgcluster run: initdb in a
# temporary directory, as nobody when root, removed at the end), whose
# libpq environment the C tests and every busted process inherit.
BACKENDS ?= loose pack memory postgres
PG_RUN = $(if $(filter postgres,$(BACKENDS)),tools/pgcluster run,)
test-backends: all $(BUILD)/test_backends
	$(PG_RUN) $(MAKE) --no-print-directory test-backends-run

# postgres: its suite in PG_SHARDS processes (tools/spec_shards.lua, by the
# seconds per file measured on postgres in tools/spec_weights_postgres: its
# calls wait on the server, so more processes than cores still pay), the
# crash spec with 100 kills (postgres_spec kills 100 writers as well).
PG_SHARDS ?= 3
PG_BUSTED = $(foreach i,$(shell seq 1 $(PG_SHARDS)),\
  "MYDB_BACKEND=postgres MYDB_CRASH_KILLS=100 $(LUA) /usr/bin/busted $$($(LUA) tools/spec_shards.lua $(PG_SHARDS) $(i) tools/spec_weights_postgres)")
test-backends-run:
	$(BUILD)/test_backends
	tools/parallel $(foreach b,$(filter-out postgres,$(BACKENDS)),"MYDB_BACKEND=$(b) $(LUA) /usr/bin/busted") \
	  $(if $(filter postgres,$(BACKENDS)),$(PG_BUSTED))

# The spec files dealt into SPEC_SHARDS groups run at once (by their weights
# in tools/spec_weights: tools/spec_shards.lua), for the slow sanitizer run.
# (SPEC_WEIGHTS: seconds per file; the sanitizer run has its own).
SPEC_SHARDS ?= 2
SPEC_WEIGHTS ?= tools/spec_weights
BUSTED_SHARDS = $(foreach i,$(shell seq 1 $(SPEC_SHARDS)),\
  "$(LUA) /usr/bin/busted $$($(LUA) tools/spec_shards.lua $(SPEC_SHARDS) $(i) $(SPEC_WEIGHTS))")

# Benchmark-only Debian packages (SQLite through LuaSQL for bench/versus.lua,
# gnuplot for bench/chart.lua's doc/bench.svg): installed by `make bench`
# when possible; without them the SQLite columns say "not installed".
# VERSUS_ARGS, VERSIONING_ARGS, MERGE_ARGS: e.g. --quick, --rounds 5;
# CHART_ARGS: e.g. --cap 1 --out build/bench.svg.
BENCH_DEB_PKGS = lua-sql-sqlite3 gnuplot-nox
VERSUS_ARGS ?=
bench: all
	-@$(MAKE) --no-print-directory deps DEB_PKGS="$(BENCH_DEB_PKGS)"
	$(LUA) bench/bench.lua
	$(LUA) bench/backends.lua
	$(LUA) bench/versus.lua $(VERSUS_ARGS)
	$(LUA) bench/versioning.lua $(VERSIONING_ARGS)
	$(LUA) bench/diff.lua $(DIFF_ARGS)
	$(LUA) bench/merge.lua $(MERGE_ARGS)
	$(LUA) bench/sync.lua $(SYNC_ARGS)
	PGCLUSTER_FSYNC=on tools/pgcluster run $(LUA) bench/postgres.lua $(POSTGRES_ARGS)
	$(LUA) bench/chart.lua $(CHART_ARGS)

# ---- documentation --------------------------------------------------------------
# doc/REFERENCE.md from the LDoc comments of the sources (tools/reference.lua;
# spec/reference_spec.lua fails when it is stale, when a public function has
# no entry or a wrong parameter list, or when an example fails), and the
# same as HTML in build/doc/ when lua-ldoc is installed (optional: LDOC_PKGS).
LDOC_PKGS = lua-ldoc
doc:
	$(LUA) tools/reference.lua > doc/REFERENCE.md
	@if command -v ldoc >/dev/null 2>&1; then \
	  ldoc -c config.ld . >/dev/null && echo "mydb: HTML reference in $(BUILD)/doc/index.html"; \
	else echo "mydb: no HTML reference ($(LDOC_PKGS) is not installed)"; fi

# bench/postgres.lua's limit: a bare libpq round trip, from C.
bench: $(BUILD)/pgping
$(BUILD)/pgping: bench/pgping.c
	@mkdir -p $(@D)
	$(CC) $(OPT) $(WARN) $(DEFS) -I/usr/include/postgresql $< -o $@ -lpq

# ---- mydb-lua (rules in src/cli/cli.mk) -----------------------------------------
-include src/cli/cli.mk
-include fuzz/fuzz.mk

# ---- install ---------------------------------------------------------------------
install: module
	install -d $(DESTDIR)$(LUA_SHARE)/mydb/handlers $(DESTDIR)$(LUA_CMOD)/mydb
	install -m 644 $(LUA_SRC) $(DESTDIR)$(LUA_SHARE)/mydb/
	$(if $(HANDLER_SRC),install -m 644 $(HANDLER_SRC) $(DESTDIR)$(LUA_SHARE)/mydb/handlers/)
	install -m 755 $(BUILD)/mydb/core.so $(DESTDIR)$(LUA_CMOD)/mydb/core.so

uninstall:
	rm -rf $(DESTDIR)$(LUA_SHARE)/mydb $(DESTDIR)$(LUA_CMOD)/mydb

clean:
	rm -rf $(BUILD)
