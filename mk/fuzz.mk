# fuzz.mk — libFuzzer targets for the parsers of untrusted input (included by the Makefile).
#
#   make fuzz                      build every target into build/fuzz/ and run each 60 s
#   make fuzz FUZZ_SECONDS=300     run each target 300 s
#   make fuzz FUZZ_TARGETS=jsonl   only some targets
#   make fuzz FUZZ_SECONDS=5       the smoke run of CI (.ci/run)
#   make fuzz-build                only build
#
# Targets (tests/fuzz/fuzz_<name>.c): safetensors (st_parse, tensor reads, the checkpoint and
# adapter loaders), jsonl (ds_parse with the real tokenizer), config (model config, vocab,
# configs/minigpt.json, --config files). Each run starts from a scratch copy of
# tests/fuzz/corpus/<name>/ plus tests/regress/<name>/ in build/fuzz/run/<name>/, so the
# committed corpus does not grow. A crash leaves its input in build/fuzz/run/<name>/artifacts/
# and fails the run: fix the bug, then copy the input to tests/regress/<name>/, where
# tests/test_regress.c replays it in `make test`.
#
# The library is compiled again with clang and -fsanitize=fuzzer-no-link,address,undefined;
# cJSON, OpenBLAS and libc are the system's (not instrumented). To replay one input by hand:
#   UBSAN_OPTIONS=halt_on_error=1 build/fuzz/fuzz_jsonl FILE

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= safetensors jsonl config
FUZZ_DIR     := $(BUILD)/fuzz
# the compiler flags of the Makefile without its optimization/arch/debug CFLAGS, plus ours
# Every sanitizer report is fatal.
FUZZ_SAN     := -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all \
                -fno-omit-frame-pointer
FUZZ_ENV     := OPENBLAS_NUM_THREADS=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
FUZZ_CFLAGS   = $(filter-out $(CFLAGS),$(ALL_CFLAGS)) -O1 -g $(FUZZ_SAN)
FUZZ_OBJ     := $(SRC:src/%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_LIB     := $(FUZZ_DIR)/libminilora-fuzz.a
FUZZ_BINS    := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_TARGETS))
# -max_len per format: a tiny checkpoint or adapter is ~2-4 KB; JSONL lines and configs are short
FUZZ_MAXLEN_safetensors := 16384
FUZZ_MAXLEN_jsonl       := 4096
FUZZ_MAXLEN_config      := 4096
FUZZ_FLAGS   ?= -timeout=10 -rss_limit_mb=2048 -print_final_stats=1

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BINS)

$(FUZZ_DIR)/obj/%.o: src/%.c mk/fuzz.mk | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_LIB): $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB) mk/fuzz.mk | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -o $@ $< $(FUZZ_LIB) $(LIBS)

# One line per target: executions, coverage, and whether it crashed; fails if any did.
fuzz: $(DEPS_STAMP)
	@sh scripts/deps.sh clang libclang-rt-14-dev
	@$(MAKE) --no-print-directory fuzz-build
	@fail=0; \
	for t in $(FUZZ_TARGETS); do \
	    run=$(FUZZ_DIR)/run/$$t; rm -rf $$run; mkdir -p $$run/corpus $$run/artifacts; \
	    cp tests/fuzz/corpus/$$t/* $$run/corpus/; \
	    if [ -d tests/regress/$$t ]; then cp tests/regress/$$t/* $$run/corpus/ 2>/dev/null || true; fi; \
	    dict=""; [ -f tests/fuzz/$$t.dict ] && dict="-dict=tests/fuzz/$$t.dict"; \
	    case $$t in safetensors) ml=$(FUZZ_MAXLEN_safetensors);; jsonl) ml=$(FUZZ_MAXLEN_jsonl);; \
	                config) ml=$(FUZZ_MAXLEN_config);; *) ml=4096;; esac; \
	    echo "fuzz_$$t: $(FUZZ_SECONDS) s, -max_len=$$ml, log $$run/log"; \
	    $(FUZZ_ENV) $(FUZZ_DIR)/fuzz_$$t $$run/corpus -max_total_time=$(FUZZ_SECONDS) \
	        -max_len=$$ml -artifact_prefix=$$run/artifacts/ $(FUZZ_FLAGS) $$dict >$$run/log 2>&1; rc=$$?; \
	    execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$run/log | tail -n 1); \
	    cov=$$(grep -E '^#[0-9]+' $$run/log | tail -n 1 | sed -n 's/.*\(cov: [0-9]* ft: [0-9]* corp: [0-9]*\/[^ ]*\).*/\1/p'); \
	    crash=$$(ls $$run/artifacts 2>/dev/null | head -n 1); \
	    if [ -n "$$crash" ] || [ $$rc -ne 0 ]; then \
	        echo "fuzz_$$t: $${execs:-?} executions, $$cov: CRASH (exit $$rc) $$run/artifacts/$$crash"; \
	        grep -E 'ERROR: |runtime error|fuzz invariant broken|SUMMARY' $$run/log | head -n 5 | sed 's/^/    /'; \
	        fail=1; \
	    else \
	        echo "fuzz_$$t: $${execs:-?} executions, $$cov: no crash"; \
	    fi; \
	done; \
	[ $$fail -eq 0 ]

-include $(FUZZ_OBJ:.o=.d) $(FUZZ_BINS:=.d)
