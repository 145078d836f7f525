# statebench build. `make` builds bin/statebench (CPU backend always, CUDA when
# nvcc is found); `make test` installs what is missing, builds and runs the
# test suite; `make run` runs the quickstart sweep and draws its figures.

CC       ?= gcc
PKGS     := yaml-0.1 sqlite3 libxxhash
# gcc reads this machine (a KVM guest reporting "AMD EPYC", family 23 model 1)
# as znver1 and then vectorises 128 bits wide; its FMA units are 256 bits wide
# (sgemm ~92 GFLOP/s per core), so the pointwise loops ask for 256.
OPT      ?= -O3 -march=native -mprefer-vector-width=256
WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS   := -std=c11 -D_GNU_SOURCE $(OPT) -g $(WARN) -fopenmp -MMD -MP \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# Link the OpenMP build of OpenBLAS explicitly: its threads are OpenMP's, so
# BLAS calls and our parallel loops share one pool instead of fighting.
BLAS_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
comma    := ,
BLAS_LIB := $(if $(wildcard $(BLAS_DIR)/libopenblas.so),-L$(BLAS_DIR) -Wl$(comma)-rpath$(comma)$(BLAS_DIR)) -lopenblas
LDLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(BLAS_LIB) -lm -fopenmp

NVCC     := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
ifneq ($(NVCC),)
CUDA_HOME := $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_SRC  := $(wildcard kernels/cuda/*.cu)
CUDA_OBJ  := $(CUDA_SRC:%.cu=build/cuda/%.o)
# CUDA_GENCODE: the GPUs to build for (bench/gpu_check.sh builds for the one
# it runs on only, to save the GPU machine's minutes)
CUDA_GENCODE ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
                -gencode arch=compute_90,code=compute_90
NVFLAGS   := -O3 -std=c++17 -MMD -MP -Xcompiler -Wall,-Werror -Werror all-warnings $(CUDA_GENCODE)
CFLAGS    += -DSB_HAVE_CUDA -I$(CUDA_HOME)/include
# cuBLAS: the toolkit ships it shared only (no libcublas_static.a here), so
# the binary finds it through an rpath to the toolkit.
LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart_static -ldl -lrt -lpthread -lstdc++
TEST_CUDA_BIN := build/test_cuda
else
CUDA_OBJ  :=
TEST_CUDA_BIN :=
endif

GIT_REV  := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
VERSION  := 0.1.0
# Only the files that print the version see it, so a new commit rebuilds two files.
VERSION_FLAGS := -DSB_VERSION=\"$(VERSION)\" -DSB_GIT_REV=\"$(GIT_REV)\"
VERSION_FLAGS += -DSB_CFLAGS='"$(CC) $(filter-out -MMD -MP -I%,$(CFLAGS))"'
VERSIONED := build/host/harness/cmd_misc.o build/host/harness/cmd_run.o build/asan/harness/cmd_misc.o build/asan/harness/cmd_run.o
$(VERSIONED): CFLAGS += $(VERSION_FLAGS)
$(VERSIONED): $(wildcard .git/HEAD .git/index)

CORE_SRC := $(wildcard kernels/*.c kernels/cpu/*.c models/*.c)
HOST_SRC := $(filter-out harness/main.c,$(wildcard harness/*.c tasks/*.c))
SUPPORT  := $(wildcard tests/support*.c)
TEST_F32 := $(wildcard tests/test_*.c)
TEST_F64 := $(wildcard tests/grad_*.c)
TEST_CUDA := $(wildcard tests/cuda_*.c)

F32_OBJ  := $(CORE_SRC:%.c=build/f32/%.o)
F64_OBJ  := $(CORE_SRC:%.c=build/f64/%.o)
HOST_OBJ := $(HOST_SRC:%.c=build/host/%.o)

ASAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# The CPU kernels define cpu_<op>; the public op names are kernels/dispatch.c's
# (it routes each call to the CPU or the CUDA backend). Every build tree of
# kernels/cpu/ is renamed alike.
CPU_RENAME   := -include kernels/cpu/cpu_names.h
CPU_KERN_OBJ := $(foreach tree,f32 f64 asan asan64 fuzz,$(patsubst %.c,build/$(tree)/%.o,$(wildcard kernels/cpu/*.c)))
$(CPU_KERN_OBJ): CFLAGS += $(CPU_RENAME)
$(CPU_KERN_OBJ): FUZZ_CFLAGS += $(CPU_RENAME)
$(CPU_KERN_OBJ): kernels/cpu/cpu_names.h
# The float CPU kernels contract a * b + c into FMAs (-std=c11 alone turns
# that off): their pointwise polynomials and scans are chains of them.
# Decided at compile time, so results still do not depend on the thread
# count. The double (oracle) build keeps each operation rounded.
$(foreach tree,f32 asan,$(patsubst %.c,build/$(tree)/%.o,$(wildcard kernels/cpu/*.c))): CFLAGS += -ffp-contract=fast

.PHONY: all deps test test-asan test-cuda test-slurm fuzz run bench clean check-tools reproduce papers
all: bin/statebench

bin/statebench: build/host/harness/main.o $(HOST_OBJ) $(F32_OBJ) $(CUDA_OBJ)
	@mkdir -p bin
	$(CC) -o $@ $^ $(LDLIBS)
ifeq ($(NVCC),)
	@echo "note: nvcc not found: built the CPU-only binary"
endif

build/host/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
build/f32/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
build/f64/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DSB_DOUBLE -c $< -o $@
build/cuda/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

# Tests: test_*.c run against the production (float) build, grad_*.c against
# the double-precision build of kernels/ and models/ (finite differences).
build/test_f32: $(TEST_F32:%.c=build/host/%.o) $(SUPPORT:%.c=build/host/%.o) $(HOST_OBJ) $(F32_OBJ) $(CUDA_OBJ)
	$(CC) -o $@ $^ $(LDLIBS) -lcriterion
build/test_f64: $(TEST_F64:%.c=build/f64/%.o) $(SUPPORT:%.c=build/f64/%.o) $(HOST_OBJ) $(F64_OBJ) $(CUDA_OBJ)
	$(CC) -o $@ $^ $(LDLIBS) -lcriterion
# The cross-backend tests (tests/cuda_*.c): every CUDA op and slice mixer
# against the CPU; built with nvcc only; `make test-cuda` runs them (needs a GPU).
build/test_cuda: $(TEST_CUDA:%.c=build/host/%.o) $(SUPPORT:%.c=build/host/%.o) $(HOST_OBJ) $(F32_OBJ) $(CUDA_OBJ)
	$(CC) -o $@ $^ $(LDLIBS) -lcriterion

# Sanitizer build of the same tests (ASan + UBSan), in its own tree.
build/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASAN) -O1 -c $< -o $@
build/asan64/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASAN) -O1 -DSB_DOUBLE -c $< -o $@
build/asan/test_f32: $(TEST_F32:%.c=build/asan/%.o) $(SUPPORT:%.c=build/asan/%.o) $(HOST_SRC:%.c=build/asan/%.o) $(CORE_SRC:%.c=build/asan/%.o) $(CUDA_OBJ)
	$(CC) $(ASAN) -o $@ $^ $(LDLIBS) -lcriterion
build/asan/test_f64: $(TEST_F64:%.c=build/asan64/%.o) $(SUPPORT:%.c=build/asan64/%.o) $(HOST_SRC:%.c=build/asan/%.o) $(CORE_SRC:%.c=build/asan64/%.o) $(CUDA_OBJ)
	$(CC) $(ASAN) -o $@ $^ $(LDLIBS) -lcriterion

# Packages statebench needs, all from Debian.
DEB_PKGS := build-essential pkg-config libopenblas-openmp-dev libopenblas-dev libyaml-dev \
            libsqlite3-dev libxxhash-dev libcriterion-dev gnuplot-nox sqlite3
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "deps: all present"; \
	elif [ "$$(id -u)" != 0 ]; then echo "deps: missing Debian packages:$$(echo $$missing | sed 's/^/ /')"; \
	  echo "deps: not root; run: sudo apt-get install -y $$(echo $$missing)"; exit 1; \
	else echo "deps: installing $$(echo $$missing)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $$missing >/dev/null && \
	  echo "deps: installed"; fi

# `make test` runs the suite and the sanitizer build; the Criterion
# "Synthesis" lines are the summary CI reads.
test: deps
	@$(MAKE) --no-print-directory bin/statebench build/test_f32 build/test_f64 $(TEST_CUDA_BIN)
	OMP_WAIT_POLICY=passive ./build/test_f32 --jobs 2
	OMP_WAIT_POLICY=passive ./build/test_f64 --jobs 2
	@$(MAKE) --no-print-directory test-cuda-emu
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-slurm
	@$(MAKE) --no-print-directory fuzz

test-asan: build/asan/test_f32 build/asan/test_f64 bin/statebench
	OMP_WAIT_POLICY=passive ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=tests/lsan.supp SB_TEST_QUICK=1 ./build/asan/test_f32 --jobs 2
	OMP_WAIT_POLICY=passive ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=tests/lsan.supp SB_TEST_QUICK=1 ./build/asan/test_f64 --jobs 2

# GPU against CPU (tests/cuda_*.c); `make test` builds it but does not run it
# (it runs them on the CPU emulator instead: test-cuda-emu below).
test-cuda:
ifeq ($(NVCC),)
	@echo "test-cuda: nvcc not found: the CUDA backend is not built"; exit 1
else
	@$(MAKE) --no-print-directory build/test_cuda
	OMP_WAIT_POLICY=passive ./build/test_cuda --jobs 1
endif

# The same cross-backend tests with the CUDA backend on the CPU emulator
# (tools/cuda_emu/README.md), no GPU or nvcc needed: every kernels/cuda/*.cu
# rewritten by emu_launch (kernel<<<...>>> launches) and compiled by g++.
# Only the C files that test SB_HAVE_CUDA get their own objects; the rest of
# the float build is shared.
.PHONY: test-cuda-emu
EMU_DIR      := build/emu
EMU_CXX      ?= g++
EMU_SAN      := -fsanitize=bounds -fno-sanitize-recover=bounds
EMU_CXXFLAGS := -std=c++20 -O2 -g -Wall -Wno-unknown-pragmas -Wno-unused-function -MMD -MP -Itools/cuda_emu/include
EMU_CU_OBJ   := $(patsubst %.cu,$(EMU_DIR)/cu/%.o,$(wildcard kernels/cuda/*.cu))
EMU_C_SRC    := $(shell grep -l SB_HAVE_CUDA $(CORE_SRC) $(HOST_SRC) 2>/dev/null)
EMU_C_OBJ    := $(EMU_C_SRC:%.c=$(EMU_DIR)/c/%.o)
EMU_SHARED   := $(filter-out $(EMU_C_SRC:%.c=build/f32/%.o) $(EMU_C_SRC:%.c=build/host/%.o),$(HOST_OBJ) $(F32_OBJ))
EMU_LDLIBS   := $(filter-out -lcublas -lcudart_static,$(LDLIBS))
.PRECIOUS: $(EMU_DIR)/cu/%.cpp
$(EMU_DIR)/emu_launch: tools/cuda_emu/emu_launch.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 $(WARN) -o $@ $<
$(EMU_DIR)/cu/%.cpp: %.cu $(EMU_DIR)/emu_launch
	@mkdir -p $(dir $@)
	$(EMU_DIR)/emu_launch $< $@
$(EMU_DIR)/cu/%.o: $(EMU_DIR)/cu/%.cpp
	$(EMU_CXX) $(EMU_CXXFLAGS) $(EMU_SAN) -iquote $(dir $*) -include cuda_runtime.h -c $< -o $@
$(EMU_DIR)/c/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DSB_HAVE_CUDA $(if $(filter kernels/cpu/%,$<),$(CPU_RENAME)) -c $< -o $@
$(EMU_DIR)/emu_rt.o: tools/cuda_emu/emu_rt.cpp
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(EMU_CXXFLAGS) -c $< -o $@
build/test_cuda_emu: $(TEST_CUDA:%.c=build/host/%.o) $(SUPPORT:%.c=build/host/%.o) $(EMU_SHARED) $(EMU_C_OBJ) \
                     $(EMU_CU_OBJ) $(EMU_DIR)/emu_rt.o
	$(EMU_CXX) $(EMU_SAN) -o $@ $^ $(EMU_LDLIBS) -lpthread -lcriterion
# the emulator's own tests (tools/cuda_emu/selftest.cu) first
$(EMU_DIR)/cu/tools/cuda_emu/%.o: EMU_SAN += -Wno-array-bounds
$(EMU_DIR)/test_emu_self: $(EMU_DIR)/cu/tools/cuda_emu/selftest.o $(EMU_DIR)/emu_rt.o
	$(EMU_CXX) $(EMU_SAN) -o $@ $^ -lpthread -lcriterion
test-cuda-emu: build/test_cuda_emu $(EMU_DIR)/test_emu_self
	./$(EMU_DIR)/test_emu_self --jobs 2
	CUDA_EMU_ORDER=reverse ./$(EMU_DIR)/test_emu_self --jobs 2 --filter 'cuda_emu/lane_order*'
	OMP_WAIT_POLICY=passive ./build/test_cuda_emu --jobs 2
	@echo "test-cuda-emu: again with each block's threads run in reverse order (races between barriers)"
	CUDA_EMU_ORDER=reverse OMP_WAIT_POLICY=passive ./build/test_cuda_emu --jobs 2

# A real sweep on a real single-node SLURM cluster (root: installs and starts
# the daemons; otherwise prints SKIPPED).
test-slurm: bin/statebench
	./tests/slurm_test.sh bin/statebench

# libFuzzer on the YAML loader and the command line under ASan + UBSan, for
# FUZZ_SECONDS each, after replaying the kept crash inputs
# (tests/fuzz/regressions/); new crash inputs land in build/fuzz/artifacts/.
FUZZ_CC      := $(shell command -v clang-14 2>/dev/null || command -v clang 2>/dev/null)
FUZZ_SECONDS ?= 25
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 -MMD -MP -fsanitize=fuzzer-no-link,address,undefined \
                -fno-sanitize-recover=undefined $(VERSION_FLAGS) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_OBJ     := $(HOST_SRC:%.c=build/fuzz/%.o) $(CORE_SRC:%.c=build/fuzz/%.o)
.SECONDARY: $(FUZZ_OBJ) build/fuzz/tests/fuzz/fuzz_config.o build/fuzz/tests/fuzz/fuzz_cli.o
build/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
build/fuzz/fuzz_%: build/fuzz/tests/fuzz/fuzz_%.o $(FUZZ_OBJ)
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(filter-out -fopenmp,$(LDLIBS)) -lgomp
fuzz:
ifeq ($(FUZZ_CC),)
	@echo "SKIPPED: fuzz: clang not found (apt-get install clang libclang-rt-dev)"
else
	@$(MAKE) --no-print-directory build/fuzz/fuzz_config build/fuzz/fuzz_cli
	@mkdir -p build/fuzz/artifacts
	@for t in config cli; do \
	  cases=$$(ls tests/fuzz/regressions/$$t/* 2>/dev/null); \
	  if [ -n "$$cases" ]; then ./build/fuzz/fuzz_$$t -close_fd_mask=3 $$(for c in $$cases; do echo $(CURDIR)/$$c; done) >build/fuzz/replay_$$t.log 2>&1 || \
	    { tail -n 40 build/fuzz/replay_$$t.log; echo "fuzz: a kept crash input of $$t fails again"; exit 1; }; fi; \
	  echo "fuzz: $$t: $$(echo $$cases | wc -w) kept crash inputs replayed"; \
	  mkdir -p build/fuzz/corpus/$$t; \
	  ./build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -close_fd_mask=3 \
	    $$( [ $$t = config ] && echo -dict=$(CURDIR)/tests/fuzz/config.dict ) -print_final_stats=1 \
	    -artifact_prefix=$(CURDIR)/build/fuzz/artifacts/$$t- $(CURDIR)/build/fuzz/corpus/$$t $(CURDIR)/tests/fuzz/corpus/$$t \
	    >build/fuzz/$$t.log 2>&1 || { tail -n 60 build/fuzz/$$t.log; \
	    echo "fuzz: $$t FAILED: the input is in build/fuzz/artifacts/; fix the bug, then keep the input in tests/fuzz/regressions/$$t/"; exit 1; }; \
	  echo "fuzz: $$t: $$(sed -n 's/^stat::number_of_executed_units: *//p' build/fuzz/$$t.log) executions in $(FUZZ_SECONDS) s," \
	    "$$(ls build/fuzz/corpus/$$t | wc -l) corpus inputs, no crash, leak or hang"; \
	done
endif

run: deps
	@$(MAKE) --no-print-directory bin/statebench
	@mkdir -p results
	./bin/statebench run configs/quickstart.yaml --db results/quickstart.db
	./bin/statebench plot results/quickstart.db --out plots/quickstart
	./bin/statebench plot results/quickstart.db --kind curves --out plots/quickstart
	./bin/statebench report results/quickstart.db

# make reproduce (or make papers): every paper config's quick variant
# (configs/papers/*.yaml) into results/papers.db, its figures into
# plots/papers/ and its tables printed; docs/REPRODUCTIONS.md sets them
# beside the papers' claims. Done runs are skipped, so a rerun only draws.
PAPERS    := $(sort $(basename $(notdir $(wildcard configs/papers/*.yaml))))
PAPERS_DB := results/papers.db
comma     := ,
PAPER_FIG  = ./bin/statebench plot $(PAPERS_DB) --out plots/papers --where experiment=$(1)/quick $(2)
PAPER_TAB  = ./bin/statebench report $(PAPERS_DB) --where experiment=$(1)/quick $(2)
reproduce papers: deps
	@$(MAKE) --no-print-directory bin/statebench
	@mkdir -p results
	@set -e; for p in $(PAPERS); do \
	  echo "== $$p (quick)"; ./bin/statebench run configs/papers/$$p.yaml --variant quick --db $(PAPERS_DB); done
	$(call PAPER_FIG,grazzi2024_parity)
	$(call PAPER_FIG,grazzi2024_mod_arith)
	$(call PAPER_FIG,deletang2023_regular)
	$(call PAPER_FIG,deletang2023_regular,--kind heatmap --range 41:256)
	$(call PAPER_FIG,arora2024_jrt_set_disjoint,--by model.mixer$(comma)task.order)
	$(call PAPER_FIG,zoology2023_mqar,--x model.d_model --by model.mixer$(comma)task.kv_pairs --best-over train.lr)
	$(call PAPER_FIG,merrill2024_groups,--x model.layers --by model.mixer$(comma)task.group)
	$(call PAPER_FIG,akyurek2024_icll,--kind curves)
	$(call PAPER_TAB,grazzi2024_parity)
	$(call PAPER_TAB,grazzi2024_mod_arith)
	$(call PAPER_TAB,deletang2023_regular,--rows group --cols task.name --range 41:256)
	$(call PAPER_TAB,arora2024_jrt_set_disjoint,--rows model.mixer --cols task.order)
	$(call PAPER_TAB,zoology2023_mqar,--by model.mixer$(comma)task.kv_pairs --cols model.d_model --best-over train.lr)
	$(call PAPER_TAB,merrill2024_groups,--by model.mixer$(comma)model.layers --cols task.group)
	$(call PAPER_TAB,akyurek2024_icll,--metric token_acc)

bench: bin/statebench
	./bin/statebench bench

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
