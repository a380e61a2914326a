# fuzz/fuzz.mk - sanitizer, valgrind and libFuzzer jobs (included by the
# main Makefile, after src/cli/cli.mk; it uses CC, OPT, SAN, BUILD,
# CFLAGS_ALL, LUA, LUA_INC, LUA_LIB, LDLIBS_CORE, LMOD_OBJ, CLI_OBJ and
# CLI_LIBS from there).
#
#   make test-asan        the core, the Lua module (mydb/core.so) and
#                         mydb-lua built with AddressSanitizer and
#                         UndefinedBehaviorSanitizer into build-asan/ (never
#                         build/), then the C tests (make test-c, leak
#                         detection on) and the whole spec suite run under
#                         them
#   make test-valgrind    examples/*.lua under valgrind memcheck, the C
#                         backend contract tests on postgres (a throwaway
#                         cluster, tools/pgcluster), and
#                         build/test_oom_api (allocation failures injected
#                         through the module; its api case at a stride of 15)
#   make fuzz             builds the libFuzzer targets into build-fuzz/ and
#                         runs each for FUZZ_TIME seconds from its corpus
#   make fuzz-build       only builds them
#   make fuzz FUZZ_TIME=30 FUZZ_TARGETS=head
#
# Fuzz targets (fuzz/*.c, seeds in fuzz/corpus/<target>/):
#   codec  the snapshot and value decoders through an embedded Lua state:
#          core.decode, decode_snapshot, decode_into, leaf_split,
#          collection_root; decoded values must re-encode canonically
#   head   the head journal parser: the input is written as ROOT/t/head of a
#          temporary store, read by mydb_head_get/mydb_head_foreach (fresh and
#          appended), then a commit is made on top of it
#   api    the core's public calls with hostile arguments (tenant ids,
#          digests, entry names with odd bytes and lengths); nothing may be
#          created outside ROOT
#   expr   untrusted expressions in the sandbox (src/lua/lsandbox.c): every
#          input compiles or not, evaluates or stops at a budget, with the
#          sandbox's memory within its budget and the host unchanged
# New inputs found during a run go to build-fuzz/corpus/<target> (not into
# the repository); a crash leaves build-fuzz/crash-<target>-<sha1> and fails
# the run. To keep a crashing input as a regression seed, copy it to
# fuzz/corpus/<target>/ (after fixing the bug and writing its test).

ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME ?= 60
FUZZ_TARGETS ?= codec head api expr
FUZZ_CC ?= clang
FUZZ_CFLAGS ?=
# Debian packages of this file's jobs: clang's libFuzzer and sanitizer
# runtimes, and valgrind (installed when root, like `make deps`).
FUZZ_DEB_PKGS = clang libclang-rt-14-dev valgrind

# -O1 keeps the stack traces readable; -fno-sanitize-recover makes any
# UBSan report fatal, so a run is either clean or fails.
ASAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_SAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

# How the spec suite runs under the sanitizers. The interpreter is Debian's
# lua5.4 (not instrumented) loading build-asan/mydb/core.so (instrumented).
# A sanitized shared object needs the ASan runtime loaded first, so it is
# LD_PRELOADed (gcc's libasan.so, found with -print-file-name). The
# variable is inherited by every process the specs start (fresh lua5.4
# writers and readers, mydb-lua, and also sh, find, sort...): all of them
# run with the runtime, and every mydb call in any of them is checked.
# detect_leaks=0: LeakSanitizer would also judge lua5.4, busted and the
# shell tools, none of them ours; leaks in the core are checked by
# build-asan/test_core (leak detection on) and by valgrind on the examples.
# The mydb-lua specs (spec/cli) run build-asan/mydb-lua: the suite runs in
# build-asan/tree, a tree of symlinks to this checkout where mydb-lua and
# build/ are build-asan's (the specs find both relative to the repository).
ASAN_LIB = $(shell gcc -print-file-name=libasan.so)
ASAN_ENV = ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:detect_stack_use_after_return=0 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
VALGRIND = valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
           --suppressions=$(CURDIR)/fuzz/valgrind.supp --quiet

.PHONY: test-asan test-valgrind fuzz fuzz-build fuzz-deps clean-san

fuzz-deps:
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(FUZZ_DEB_PKGS)"

# ---- sanitizers ------------------------------------------------------------------
# mydb-lua inside a build directory (cli.mk's rule writes ./mydb-lua, which
# belongs to the normal build).
$(BUILD)/mydb-lua: $(CLI_OBJ) $(LMOD_OBJ) $(BUILD)/libmydb.a
	$(CC) $(SAN) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LMOD_OBJ) $(BUILD)/libmydb.a \
	  $(LUA_LIB) $(CLI_LIBS) $(LDLIBS_CORE) -lm -ldl

test-asan: SPEC_WEIGHTS = tools/spec_weights_asan
test-asan: deps fuzz-deps
	$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) CC=gcc OPT="-O1 -g" SAN="$(ASAN_FLAGS)" \
	  module $(ASAN_BUILD)/mydb-lua $(ASAN_BUILD)/cli/ptyrun
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) CC=gcc OPT="-O1 -g" SAN="$(ASAN_FLAGS)" test-c
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  tools/pgcluster run $(ASAN_BUILD)/test_backends postgres
	@rm -rf $(ASAN_BUILD)/tree && mkdir -p $(ASAN_BUILD)/tree && \
	for f in $(CURDIR)/* $(CURDIR)/.busted; do \
	  case "$${f##*/}" in build|build-*|mydb-lua|mydb) continue;; esac; \
	  ln -s "$$f" $(ASAN_BUILD)/tree/; \
	done && ln -s .. $(ASAN_BUILD)/tree/build && ln -s ../mydb-lua $(ASAN_BUILD)/tree/mydb-lua && \
	ln -s mydb-lua $(ASAN_BUILD)/tree/mydb
	cd $(ASAN_BUILD)/tree && $(ASAN_ENV) LD_PRELOAD=$(ASAN_LIB) \
	  LUA_PATH='$(CURDIR)/$(ASAN_BUILD)/lua/?.lua;$(CURDIR)/$(ASAN_BUILD)/lua/?/init.lua;;' \
	  LUA_CPATH='$(CURDIR)/$(ASAN_BUILD)/?.so;;' $(CURDIR)/tools/parallel $(BUSTED_SHARDS)

# The examples under valgrind, each in a scratch directory (they make their
# own temporary stores), with the normal build; "N passed, N failed" last.
test-valgrind: all fuzz-deps $(BUILD)/test_oom_api $(BUILD)/test_backends
	@pass=0; fail=0; \
	if $(VALGRIND) $(BUILD)/test_oom_api $(BUILD) test/test_oom_api.lua 15 >/dev/null; then \
	  pass=$$((pass + 1)); echo "valgrind: test_oom_api: clean"; \
	else fail=$$((fail + 1)); echo "valgrind: test_oom_api: ERRORS"; fi; \
	for ex in examples/*.lua; do \
	  d=$$(mktemp -d) && cp "$$ex" "$$d/" && \
	  if ( cd "$$d" && $(VALGRIND) $(LUA) "$${ex##*/}" >/dev/null ); then \
	    pass=$$((pass + 1)); echo "valgrind: $$ex: clean"; \
	  else fail=$$((fail + 1)); echo "valgrind: $$ex: ERRORS"; fi; \
	  rm -rf "$$d"; \
	done; \
	if tools/pgcluster run $(VALGRIND) $(BUILD)/test_backends postgres >/dev/null; then \
	  pass=$$((pass + 1)); echo "valgrind: test_backends postgres: clean"; \
	else fail=$$((fail + 1)); echo "valgrind: test_backends postgres: ERRORS"; fi; \
	echo "$$pass passed, $$fail failed"; test $$fail -eq 0

# ---- libFuzzer ---------------------------------------------------------------------
# The core and the codec are compiled with coverage instrumentation
# (-fsanitize=fuzzer-no-link) by the main rules into build-fuzz/; each target
# links libFuzzer's main.
FUZZ_BINS = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_LMOD = $(LMOD_SRC:%.c=$(FUZZ_BUILD)/%.o)

fuzz-build: fuzz-deps
	$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) OPT="-O1 -g" \
	  SAN="$(FUZZ_SAN_FLAGS) -fsanitize=fuzzer-no-link" CFLAGS="$(FUZZ_CFLAGS)" \
	  $(FUZZ_BUILD)/libmydb.a $(FUZZ_LMOD)
	$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) $(FUZZ_BINS)

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h fuzz/fuzz_lua.h $(FUZZ_BUILD)/libmydb.a $(FUZZ_LMOD)
	$(FUZZ_CC) -O1 -g $(WARN) $(FUZZ_CFLAGS) $(FUZZ_SAN_FLAGS) -fsanitize=fuzzer $(DEFS) $(INCLUDES) -I$(LUA_INC) $< \
	  -o $@ $(FUZZ_LMOD) $(FUZZ_BUILD)/libmydb.a \
	  $(LUA_LIB) $(LDLIBS_CORE) -lm

# Each target runs FUZZ_TIME seconds; the executions go to build-fuzz/fuzz.log
# ("fuzz: <target>: N executions in T s"). The last line counts the targets
# that ran clean: "N passed, N failed" (as .ci/run expects).
fuzz: fuzz-build
	@: > $(FUZZ_BUILD)/fuzz.log; pass=0; fail=0; \
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t fuzz/corpus/$$t; \
	  echo "fuzz: $$t for $(FUZZ_TIME) s"; \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_TIME) -timeout=20 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/crash-$$t- \
	    $$(test -f fuzz/$$t.dict && echo -dict=fuzz/$$t.dict) \
	    $(FUZZ_BUILD)/corpus/$$t fuzz/corpus/$$t > $(FUZZ_BUILD)/fuzz-$$t.out 2>&1; \
	  rc=$$?; \
	  n=$$(sed -n 's/^stat::number_of_executed_units: *//p' $(FUZZ_BUILD)/fuzz-$$t.out); \
	  echo "fuzz: $$t: $${n:-?} executions in $(FUZZ_TIME) s" | tee -a $(FUZZ_BUILD)/fuzz.log; \
	  if [ $$rc -eq 0 ]; then pass=$$((pass + 1)); else \
	    fail=$$((fail + 1)); tail -60 $(FUZZ_BUILD)/fuzz-$$t.out; \
	    echo "fuzz: $$t FAILED (input saved as $(FUZZ_BUILD)/crash-$$t-*)"; \
	  fi; \
	done; \
	if tools/pgcluster run $(VALGRIND) $(BUILD)/test_backends postgres >/dev/null; then \
	  pass=$$((pass + 1)); echo "valgrind: test_backends postgres: clean"; \
	else fail=$$((fail + 1)); echo "valgrind: test_backends postgres: ERRORS"; fi; \
	echo "$$pass passed, $$fail failed"; test $$fail -eq 0

clean-san:
	rm -rf $(ASAN_BUILD) $(FUZZ_BUILD)
