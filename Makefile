# effattn — build, test, demo.  `make help` lists the targets.
CC      ?= cc
CFLAGS  ?= -O2 -march=native
OPENMP  ?= -fopenmp
WARN     = -Wall -Wextra -Wpedantic
LDLIBS   = -lm
BUILD    = build

.PHONY: all demo demo-classify cuda-build test-cuda test test-mpi mpi test-scalar test-asan test-arm valgrind fuzz fuzz-smoke strict bench clean help

all: $(BUILD)/track $(BUILD)/stream $(BUILD)/classify $(BUILD)/compare

help:
	@echo "make              build the examples (track, stream, classify, compare) into $(BUILD)/"
	@echo "make demo         train the default tracker on generated videos and print its result"
	@echo "make demo-classify  train seed 001's CNN host (attention over its feature map) on generated shapes"
	@echo "make test         build and run the test suite (last line: N passed, N failed)"
	@echo "make test-scalar  the test suite on the scalar reference path (EFFATTN_NO_SIMD)"
	@echo "make test-asan    the test suite under AddressSanitizer and UndefinedBehaviorSanitizer"
	@echo "make test-arm     the test suite built for aarch64 (NEON path), run under qemu-aarch64"
	@echo "make mpi          the MPI builds (mpicc -DEA_USE_MPI): build/track_mpi, classify_mpi, compare_mpi"
	@echo "make test-mpi     data-parallel training over 2 MPI processes against 1 (needs OpenMPI)"
	@echo "make valgrind     valgrind memcheck of a short training run (no errors, no leaks)"
	@echo "make fuzz         libFuzzer on every parser, FUZZ_SECONDS (600) each; make fuzz-smoke: 15 s each"
	@echo "make strict       gcc and clang, C99 and C++11, -Wall -Wextra -Wpedantic -Werror, two TUs"
	@echo "make cuda-build   the CUDA build (nvcc -x cu -DEFFATTN_CUDA) of its tests and the examples: compile and link"
	@echo "make test-cuda    the CUDA kernels against their CPU twins (needs an NVIDIA GPU), then compute-sanitizer"
	@echo "make bench        benchmarks: FMA peak, tracker, attention vs n (bench/bench.c), hyperfine"
	@echo "options: OPENMP= (no threads), CC=clang, CFLAGS='-O3 -march=native'"

$(BUILD):
	mkdir -p $(BUILD)

$(BUILD)/track: examples/track.c examples/cli.h examples/dist.h effattn.h | $(BUILD)
	$(CC) $(CFLAGS) $(OPENMP) $(WARN) $< -o $@ $(LDLIBS)

$(BUILD)/stream: examples/stream.c examples/cli.h effattn.h | $(BUILD)
	$(CC) $(CFLAGS) $(OPENMP) $(WARN) $< -o $@ $(LDLIBS)

$(BUILD)/classify: examples/classify.c examples/cli.h examples/dist.h effattn.h | $(BUILD)
	$(CC) $(CFLAGS) $(OPENMP) $(WARN) $< -o $@ $(LDLIBS)

# Data-parallel training over MPI processes (examples/dist.h): the same
# sources built by OpenMPI's compiler wrapper with EA_USE_MPI.
MPICC ?= mpicc
$(BUILD)/%_mpi: examples/%.c examples/cli.h examples/dist.h examples/svg.h effattn.h | $(BUILD)
	$(MPICC) $(CFLAGS) $(OPENMP) $(WARN) -DEA_USE_MPI $< -o $@ $(LDLIBS)

mpi: $(BUILD)/track_mpi $(BUILD)/classify_mpi $(BUILD)/compare_mpi

# 2 processes against 1: loss curves, test results, determinism, resuming on
# another process count, rank 0 alone writing, and failures that end the job
test-mpi: mpi
	tests/mpi.sh $(BUILD)

$(BUILD)/compare: examples/compare.c examples/cli.h examples/dist.h examples/svg.h effattn.h | $(BUILD)
	$(CC) $(CFLAGS) $(OPENMP) $(WARN) $< -o $@ $(LDLIBS)

demo: $(BUILD)/track
	./$(BUILD)/track

demo-classify: $(BUILD)/classify
	./$(BUILD)/classify

$(BUILD)/test_main: tests/test_main.c effattn.h | $(BUILD)
	$(CC) $(CFLAGS) $(OPENMP) $(WARN) $< -o $@ $(LDLIBS)

$(BUILD)/test_scalar: tests/test_main.c effattn.h | $(BUILD)
	$(CC) $(CFLAGS) -DEFFATTN_NO_SIMD $(WARN) $< -o $@ $(LDLIBS)

test: $(BUILD)/test_main $(BUILD)/track $(BUILD)/stream $(BUILD)/classify $(BUILD)/compare
	./$(BUILD)/test_main

test-scalar: $(BUILD)/test_scalar $(BUILD)/track $(BUILD)/stream $(BUILD)/classify $(BUILD)/compare
	./$(BUILD)/test_scalar

$(BUILD)/test_asan: tests/test_main.c effattn.h | $(BUILD)
	$(CC) -O1 -g -march=native -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer $(WARN) $< -o $@ $(LDLIBS)

test-asan: $(BUILD)/test_asan $(BUILD)/track $(BUILD)/stream $(BUILD)/classify $(BUILD)/compare
	ASAN_OPTIONS=detect_leaks=1 ./$(BUILD)/test_asan

# The NEON path: cross-compiled, run under user-mode qemu.  Emulation is
# ~20-100x slower, so EFFATTN_TEST_QUICK=1 has seed000 evaluate 10 of its
# 100 videos (against PyTorch's figure for those 10) and training take fewer
# steps; every other group runs as in make test.
ARM_CC ?= aarch64-linux-gnu-gcc
QEMU   ?= qemu-aarch64 -L /usr/aarch64-linux-gnu
$(BUILD)/test_arm: tests/test_main.c effattn.h | $(BUILD)
	$(ARM_CC) -O2 $(WARN) $< -o $@ $(LDLIBS)

test-arm: $(BUILD)/test_arm $(BUILD)/track $(BUILD)/stream $(BUILD)/classify $(BUILD)/compare
	EFFATTN_TEST_QUICK=1 $(QEMU) ./$(BUILD)/test_arm

# valgrind cannot decode AVX-512, so this build stops at AVX2.
$(BUILD)/track_vg: examples/track.c effattn.h | $(BUILD)
	$(CC) -O1 -g -mavx2 -mfma $(WARN) $< -o $@ $(LDLIBS)

$(BUILD)/stream_vg: examples/stream.c effattn.h | $(BUILD)
	$(CC) -O1 -g -mavx2 -mfma $(WARN) $< -o $@ $(LDLIBS)

$(BUILD)/classify_vg: examples/classify.c effattn.h | $(BUILD)
	$(CC) -O1 -g -mavx2 -mfma $(WARN) $< -o $@ $(LDLIBS)

$(BUILD)/compare_vg: examples/compare.c examples/svg.h effattn.h | $(BUILD)
	$(CC) -O1 -g -mavx2 -mfma $(WARN) $< -o $@ $(LDLIBS)

# the tracker trains, saves and reloads; the streaming tracker trains a few
# steps and streams past h2o's budget, crossmem's FIFO and mla's cache
valgrind: $(BUILD)/track_vg $(BUILD)/stream_vg $(BUILD)/classify_vg $(BUILD)/compare_vg
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=all -q \
	  ./$(BUILD)/compare_vg --model mlp --attn none,mha --images 40 --test-images 20 --epochs 1 --batch 16 --quiet \
	  --out $(BUILD)/vg_cmp
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=all -q \
	  ./$(BUILD)/compare_vg --scaling --attn mha,performer --max-n 128 --heads 2 --head-dim 8 --runs 1 --quiet --out $(BUILD)/vg_cmp
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=all -q \
	  ./$(BUILD)/classify_vg --model cnn --pool max --dropout 0.1 --augment --images 40 --test-images 20 --epochs 1 \
	  --batch 16 --latency-runs 1 --quiet --save $(BUILD)/vg_cls.eack
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=all -q \
	  ./$(BUILD)/classify_vg --model mlp --images 40 --test-images 20 --epochs 1 --batch 16 --latency-runs 1 --quiet
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=all -q \
	  ./$(BUILD)/track_vg --videos 3 --frames 6 --epochs 2 --batch 4 --latency-runs 1 --quiet --save $(BUILD)/vg.safetensors
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=all -q \
	  ./$(BUILD)/track_vg --videos 3 --frames 6 --epochs 0 --latency-runs 1 --quiet --load $(BUILD)/vg.safetensors
	for a in h2o crossmem mla mamba; do \
	  valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=all -q \
	    ./$(BUILD)/stream_vg --attn $$a --steps 2 --clip 2 --batch 1 --frames 8 --budget 100 --memory 128 --quiet > /dev/null \
	    || exit 1; \
	done

# The CUDA path (section 13): built with nvcc, the header compiled as CUDA
# C++.  cuda-build compiles and links (CI has nvcc but no GPU) and checks
# that a build without EFFATTN_CUDA holds no CUDA symbol; test-cuda runs the
# kernels against their CPU twins, then under compute-sanitizer's memcheck
# and racecheck.
NVCC      ?= nvcc
CUDA_ARCH ?= sm_90
NVFLAGS   ?= -O2 -arch=$(CUDA_ARCH) -DEFFATTN_CUDA -Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror
$(BUILD)/test_cuda: tests/test_cuda.c effattn.h | $(BUILD)
	$(NVCC) -x cu $(NVFLAGS) $< -o $@ -lcublas -lcublasLt

# Several GPUs: MPI starts the ranks, NCCL sums the gradient on the GPUs
# (examples/dist.h); built where mpicc and NCCL are present.
NCCL_MPI = -DEA_USE_MPI -DEA_USE_NCCL $(shell $(MPICC) --showme:compile 2>/dev/null)
NCCL_LIBS = -lcublas -lcublasLt -lnccl $(shell $(MPICC) --showme:link 2>/dev/null)
cuda-build: $(BUILD)/test_cuda | $(BUILD)
	$(NVCC) -x cu $(NVFLAGS) examples/track.c -o $(BUILD)/track_cuda -lcublas -lcublasLt
	$(NVCC) -x cu $(NVFLAGS) examples/classify.c -o $(BUILD)/classify_cuda -lcublas -lcublasLt
	@if command -v $(MPICC) > /dev/null; then \
	  echo "$(NVCC) -x cu $(NVFLAGS) $(NCCL_MPI) examples/{track,classify}.c -o $(BUILD)/{track,classify}_nccl $(NCCL_LIBS)"; \
	  $(NVCC) -x cu $(NVFLAGS) $(NCCL_MPI) examples/track.c -o $(BUILD)/track_nccl $(NCCL_LIBS) && \
	  $(NVCC) -x cu $(NVFLAGS) $(NCCL_MPI) examples/classify.c -o $(BUILD)/classify_nccl $(NCCL_LIBS); \
	else echo "cuda-build: no mpicc, so no NCCL build"; fi
	$(CC) -O1 $(WARN) examples/classify.c -o $(BUILD)/classify_nocuda $(LDLIBS)
	@if nm $(BUILD)/classify_nocuda | grep -qi cuda; then echo "a build without EFFATTN_CUDA holds CUDA symbols"; exit 1; fi
	@echo "cuda-build: compiled and linked; no CUDA symbol without EFFATTN_CUDA"

test-cuda: $(BUILD)/test_cuda
	./$(BUILD)/test_cuda
	compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 1 ./$(BUILD)/test_cuda > $(BUILD)/memcheck.log || { tail -30 $(BUILD)/memcheck.log; exit 1; }
	compute-sanitizer --tool racecheck --error-exitcode 1 ./$(BUILD)/test_cuda --kernels > $(BUILD)/racecheck.log || { tail -30 $(BUILD)/racecheck.log; exit 1; }
	compute-sanitizer --tool racecheck --error-exitcode 1 ./$(BUILD)/test_cuda --fused >> $(BUILD)/racecheck.log || { tail -30 $(BUILD)/racecheck.log; exit 1; }
	@echo "test-cuda: memcheck (whole suite) and racecheck (kernel tests, fused forward) clean; API errors not reported: the suite makes one on purpose, a 16 TiB allocation"

# Every combination a user may drop the header into, warnings as errors.
strict: | $(BUILD)
	@set -e; for cc in gcc clang; do \
	  echo "$$cc -std=c99"; \
	  $$cc -std=c99 -O1 $(WARN) -Werror tests/tu_impl.c tests/tu_user.c -o $(BUILD)/strict_$$cc $(LDLIBS); \
	  ./$(BUILD)/strict_$$cc; \
	  echo "$$cc -std=c99 -DEFFATTN_NO_SIMD"; \
	  $$cc -std=c99 -O1 -DEFFATTN_NO_SIMD $(WARN) -Werror tests/tu_impl.c tests/tu_user.c -o $(BUILD)/strict_$$cc $(LDLIBS); \
	  echo "$$cc -std=c99 -march=native -fopenmp=$$([ $$cc = gcc ] && echo yes || echo no)"; \
	  $$cc -std=c99 -O1 -march=native $(WARN) -Werror $$([ $$cc = gcc ] && echo -fopenmp) tests/tu_impl.c tests/tu_user.c -o $(BUILD)/strict_$$cc $(LDLIBS); \
	  ./$(BUILD)/strict_$$cc; \
	done; \
	for cxx in g++ clang++; do \
	  echo "$$cxx -std=c++11"; \
	  $$cxx -x c++ -std=c++11 -O1 -march=native $(WARN) -Werror tests/tu_impl.c tests/tu_user.c -o $(BUILD)/strict_cxx $(LDLIBS); \
	  ./$(BUILD)/strict_cxx; \
	done; \
	echo "gcc -O3 -Wformat-truncation=2 (what newer gcc reports at -O3 by default)"; \
	gcc -std=c99 -O3 -march=native $(WARN) -Wformat-truncation=2 -Werror -fopenmp tests/tu_impl.c tests/tu_user.c -o $(BUILD)/strict_o3 $(LDLIBS); \
	echo "examples and tests, -Werror"; \
	gcc -std=c99 -O1 -march=native $(WARN) -Werror -fopenmp examples/track.c -o $(BUILD)/strict_track $(LDLIBS); \
	clang -std=c99 -O1 -march=native $(WARN) -Werror examples/track.c -o $(BUILD)/strict_track $(LDLIBS); \
	gcc -std=c99 -O1 -march=native $(WARN) -Werror -fopenmp examples/stream.c -o $(BUILD)/strict_stream $(LDLIBS); \
	clang -std=c99 -O1 -march=native $(WARN) -Werror examples/stream.c -o $(BUILD)/strict_stream $(LDLIBS); \
	gcc -std=c99 -O1 -march=native $(WARN) -Werror -fopenmp examples/classify.c -o $(BUILD)/strict_classify $(LDLIBS); \
	clang -std=c99 -O1 -march=native $(WARN) -Werror examples/classify.c -o $(BUILD)/strict_classify $(LDLIBS); \
	g++ -x c++ -std=c++11 -O1 -march=native $(WARN) -Werror examples/classify.c -o $(BUILD)/strict_classify $(LDLIBS); \
	gcc -std=c99 -O1 -march=native $(WARN) -Werror -fopenmp examples/compare.c -o $(BUILD)/strict_compare $(LDLIBS); \
	clang -std=c99 -O1 -march=native $(WARN) -Werror examples/compare.c -o $(BUILD)/strict_compare $(LDLIBS); \
	g++ -x c++ -std=c++11 -O1 -march=native $(WARN) -Werror examples/compare.c -o $(BUILD)/strict_compare $(LDLIBS); \
	gcc -std=c99 -O1 -march=native $(WARN) -Werror tests/test_main.c -o $(BUILD)/strict_test $(LDLIBS); \
	clang -std=c99 -O1 -march=native $(WARN) -Werror tests/test_main.c -o $(BUILD)/strict_test $(LDLIBS); \
	gcc -std=c99 -O1 -march=native $(WARN) -Werror -fopenmp bench/bench.c -o $(BUILD)/strict_bench $(LDLIBS); \
	gcc -std=c99 -O1 -march=native $(WARN) -Werror -fopenmp bench/regions.c -o $(BUILD)/strict_regions -Wl,--wrap=GOMP_parallel -ldl $(LDLIBS); \
	gcc -std=c99 -O1 -march=native $(WARN) -Werror -fopenmp bench/ln_coherence.c -o $(BUILD)/strict_ln_coherence $(LDLIBS); \
	gcc -std=c99 -O1 -march=native $(WARN) -Werror bench/flash_spread.c -o $(BUILD)/strict_flash_spread $(LDLIBS); \
	if command -v clang-16 > /dev/null; then \
	  echo "clang-16 -std=c99 and clang++-16 -std=c++11: the header, two units, examples and tests"; \
	  clang-16 -std=c99 -O1 -march=native $(WARN) -Werror tests/tu_impl.c tests/tu_user.c -o $(BUILD)/strict_c16 $(LDLIBS); \
	  ./$(BUILD)/strict_c16; \
	  clang++-16 -x c++ -std=c++11 -O1 -march=native $(WARN) -Werror tests/tu_impl.c tests/tu_user.c -o $(BUILD)/strict_c16 $(LDLIBS); \
	  for f in examples/track.c examples/stream.c examples/classify.c examples/compare.c tests/test_main.c; do \
	    clang-16 -std=c99 -O1 -march=native $(WARN) -Werror $$f -o $(BUILD)/strict_c16 $(LDLIBS); \
	  done; \
	else echo "clang-16: not installed, skipped (apt-get install clang-16)"; fi; \
	if command -v $(MPICC) > /dev/null; then \
	  $(MPICC) -std=c99 -O1 -march=native $(WARN) -Werror -fopenmp -DEA_USE_MPI examples/track.c -o $(BUILD)/strict_track_mpi $(LDLIBS); \
	  $(MPICC) -std=c99 -O1 -march=native $(WARN) -Werror -DEA_USE_MPI examples/classify.c -o $(BUILD)/strict_classify_mpi $(LDLIBS); \
	fi; \
	echo "strict: all clean"

# libFuzzer harnesses for every parser (clang); seed corpora in tests/fuzz/corpus,
# new inputs collect in build/corpus_NAME.
FUZZERS      = safetensors checkpoint idx cifar flags gzip
FUZZ_SECONDS ?= 600
FUZZ_CC      ?= clang

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c effattn.h examples/track.c examples/cli.h | $(BUILD)
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $(WARN) $< -o $@ $(LDLIBS)

fuzz: $(addprefix $(BUILD)/fuzz_,$(FUZZERS))
	@set -e; for f in $(FUZZERS); do \
	  mkdir -p $(BUILD)/corpus_$$f; \
	  echo "fuzz $$f for $(FUZZ_SECONDS) s"; \
	  ./$(BUILD)/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -close_fd_mask=3 \
	    $(BUILD)/corpus_$$f tests/fuzz/corpus/$$f > $(BUILD)/fuzz_$$f.log 2>&1 || { tail -40 $(BUILD)/fuzz_$$f.log; exit 1; }; \
	  grep -h 'stat::number_of_executed_units' $(BUILD)/fuzz_$$f.log; \
	done

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=15

$(BUILD)/bench: bench/bench.c examples/cli.h effattn.h | $(BUILD)
	$(CC) $(CFLAGS) $(OPENMP) $(WARN) $< -o $@ $(LDLIBS)

# Where a tracker step's time goes, parallel region by region.  gcc and
# libgomp only (it wraps GOMP_parallel); -g lets addr2line name the regions.
$(BUILD)/regions: bench/regions.c effattn.h | $(BUILD)
	gcc -std=c99 -O2 -g -march=native -fopenmp $(WARN) $< -o $@ -Wl,--wrap=GOMP_parallel -ldl $(LDLIBS)

# What a layer norm pass costs when other cores read or wrote its rows
# (OpenMP; bench/ln_coherence.c says why).
$(BUILD)/ln_coherence: bench/ln_coherence.c effattn.h | $(BUILD)
	$(CC) $(CFLAGS) $(OPENMP) $(WARN) $< -o $@ $(LDLIBS)

# The flash forward against the spread of its scores (bench/flash_spread.c;
# one thread: no OpenMP).
$(BUILD)/flash_spread: bench/flash_spread.c effattn.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $< -o $@ $(LDLIBS)

# Speed is measured here, never in tests: kernel and model tables, then
# whole-program timings.  BENCH_ARGS=--json for machine-readable lines.
bench: $(BUILD)/bench
	./$(BUILD)/bench --threads 1 $(BENCH_ARGS)
	./$(BUILD)/bench --tracker $(BENCH_ARGS)
	bench/hyperfine.sh out

clean:
	rm -rf $(BUILD)
