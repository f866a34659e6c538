# format.mk — the code style (.clang-format at the repository root), checked, never applied
# (included by the Makefile).
#
#   make format-check    clang-format --dry-run -Werror on every C file of src/, include/,
#                        tests/ and tests/fuzz/; lists the files that differ and fails if any
#                        does (scripts/deps.sh installs clang-format when it is missing)
#
# To reformat a file by hand: clang-format -i FILE.

FORMAT_FILES = $(sort $(wildcard src/*/*.c src/*/*.h include/*/*.h tests/*.c tests/*.h \
                                 tests/fuzz/*.c tests/fuzz/*.h))

.PHONY: format-check
format-check:
	@command -v clang-format >/dev/null 2>&1 || sh scripts/deps.sh clang-format
	@bad=0; for f in $(FORMAT_FILES); do \
	    clang-format --dry-run -Werror $$f >/dev/null 2>&1 || { echo "format-check: $$f differs"; bad=$$((bad + 1)); }; \
	done; \
	if [ $$bad -ne 0 ]; then \
	    echo "format-check: $$bad of $(words $(FORMAT_FILES)) files differ from .clang-format (clang-format -i FILE fixes one)"; \
	    exit 1; \
	fi; \
	echo "format-check: $(words $(FORMAT_FILES)) files follow .clang-format"
