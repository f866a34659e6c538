# asan.mk — the library, the binary and the whole test suite under AddressSanitizer and
# UndefinedBehaviorSanitizer (included by the Makefile).
#
#   make test-asan     build into build/asan/ (binary: build/asan/bin/lora and its lora-*
#                      links) and run tests/run.sh on the sanitized test programs
#
# The normal build (build/*.o, bin/) is not touched. Every report is fatal
# (-fno-sanitize-recover=all, halt_on_error=1, abort_on_error=1) and leaks are reported.
# Shell tests find the sanitized binary in $LORA_BIN (the normal one is bin/lora), and
# build/asan/bin is put first on PATH for those that call lora-* by name.
#
# The programs re-execute themselves once through /proc/self/exe to pick the OpenBLAS kernel
# (src/util/blas_runtime.c); that was checked to work under both sanitizers (the environment, and so
# ASAN_OPTIONS, carries over, and the leak check runs in the final image), so it is left on
# and tested here too. `make test-asan ASAN_CORETYPE=SkylakeX` sets OPENBLAS_CORETYPE instead,
# which skips the re-exec.

ASAN_CC      ?= $(CC)
ASAN_BUILD   := $(BUILD)/asan
ASAN_BINDIR  := $(ASAN_BUILD)/bin
ASAN_SAN     := -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer \
                -fno-sanitize-recover=all
# the compiler flags of the Makefile with -O1 (sanitizer reports stay readable) for its -O3
ASAN_CFLAGS   = $(filter-out $(OPT),$(ALL_CFLAGS)) -O1 $(ASAN_SAN)
ASAN_OBJ     := $(SRC:src/%.c=$(ASAN_BUILD)/%.o)
ASAN_CLI_OBJ := $(CLI_SRC:src/cli/%.c=$(ASAN_BUILD)/cli/%.o)
ASAN_LIB     := $(ASAN_BUILD)/libminilora.a
ASAN_TEST_BIN := $(TEST_SRC:tests/%.c=$(ASAN_BUILD)/tests/%)
ASAN_CORETYPE ?=
ASAN_ENV      = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                LORA_BIN=$(CURDIR)/$(ASAN_BINDIR)/lora PATH="$(CURDIR)/$(ASAN_BINDIR):$$PATH" \
                $(if $(ASAN_CORETYPE),OPENBLAS_CORETYPE=$(ASAN_CORETYPE))

.PHONY: test-asan asan-build
asan-build: $(ASAN_BINDIR)/lora $(ASAN_TEST_BIN)

$(ASAN_BUILD)/%.o: src/%.c mk/asan.mk | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(ASAN_CC) $(ASAN_CFLAGS) -MMD -MP -c $< -o $@

$(ASAN_LIB): $(ASAN_OBJ)
	rm -f $@ && ar rcs $@ $^

$(ASAN_BINDIR)/lora: $(ASAN_CLI_OBJ) $(ASAN_LIB)
	@mkdir -p $(dir $@)
	$(ASAN_CC) $(ASAN_CFLAGS) -o $@ $(ASAN_CLI_OBJ) $(ASAN_LIB) $(LIBS)
	@for c in $(COMMANDS); do ln -sf lora $(ASAN_BINDIR)/lora-$$c; done

$(ASAN_BUILD)/tests/%: tests/%.c $(ASAN_LIB) mk/asan.mk | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(ASAN_CC) $(ASAN_CFLAGS) -MMD -MP -o $@ $< $(ASAN_LIB) $(LIBS) $(TESTLIBS)

test-asan: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory asan-build
	@echo "test-asan: $(ASAN_CC) $(ASAN_SAN)$(if $(ASAN_CORETYPE),; OPENBLAS_CORETYPE=$(ASAN_CORETYPE))"
	@env $(ASAN_ENV) sh tests/run.sh $(ASAN_TEST_BIN) $(TEST_SH)

-include $(ASAN_OBJ:.o=.d) $(ASAN_CLI_OBJ:.o=.d) $(ASAN_TEST_BIN:=.d)
