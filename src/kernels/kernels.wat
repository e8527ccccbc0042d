;; SIMD (f32x4) float32 kernels that run directly on the tfjs wasm backend's
;; heap: the module imports the backend's own memory, so tensors are read and
;; written in place at their `memoryOffset`s, with no copies.
;;
;; Every pointer and every stride is in BYTES. All loops assume their counts
;; are > 0 unless stated. `ws` arguments point at scratch space the caller
;; allocated on the same heap (sizes are documented per function and computed
;; in src/kernels/wasm-kernels.ts).
;;
;; The memory import line below is rewritten to a `shared` memory for the
;; multithreaded tfjs build (see src/kernels/assemble.js).
(module
  (import "env" "memory" (memory 1))

  ;; ---------------------------------------------------------------------
  ;; GEMM: C = alpha * op(A) * op(B) (+ C when accumulating, + bias row),
  ;; any strides, optionally G = gelu(C) as well (the dense layer's epilogue).
  ;;
  ;; A(m, k) lives at a + m*sAm + k*sAk and B(k, n) at b + k*sBk + n*sBn, so
  ;; every transpose flag (and strided views such as one head inside a
  ;; [tokens, 3*dim] qkv matrix) is just a choice of strides. C rows are
  ;; contiguous, row stride sCm.
  ;;
  ;; Blocking (BLIS order): K in chunks of KC = 256. Per chunk, B is packed
  ;; into panels of 8 columns ([kc][8], zero padded); rows go in blocks of
  ;; MC = 64 whose A is packed into panels of 4 rows ([kc][4], alpha applied).
  ;; For each B panel (8 KiB, stays in L1) the 4x8 register-tile micro kernel
  ;; sweeps the block's A panels (64 KiB, L2). The accumulators start from
  ;; the bias (first chunk), from C (later chunks) or from 0, so neither the
  ;; bias nor the K chunks cost a pass of their own; the GELU runs on each
  ;; block's rows while they are still in cache.
  ;;
  ;; The multiply-adds are written as f32x4.relaxed_madd: assemble.js emits
  ;; this module twice, once as is (fused multiply-add where the CPU has it)
  ;; and once with each relaxed_madd rewritten to f32x4.mul + f32x4.add for
  ;; engines without relaxed SIMD.
  ;;
  ;; ws layout: [B panels: 256 * roundup(N, 8) floats][A block: 64*256 floats][C tile: 32 floats]
  ;; (gemmScratchBytes in wasm-kernels.ts must agree).
  ;; ---------------------------------------------------------------------

  ;; 4x8 micro kernel over kc >= 1 steps: packed A panel pa ([kc][4]), packed
  ;; B panel pb ([kc][8]); C tile at cp, row stride ldc. init: 0 starts from
  ;; zero, 1 from the C tile (accumulate), 2 from the 8 floats at bp in every
  ;; row (bias).
  (func $mk4x8 (param $pa i32) (param $pb i32) (param $kc i32) (param $cp i32) (param $ldc i32)
               (param $init i32) (param $bp i32)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
    (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
    (local $b0 v128) (local $b1 v128) (local $av v128)
    (local $p i32)
    (if (i32.eq (local.get $init) (i32.const 1))
      (then
        (local.set $p (local.get $cp))
        (local.set $c00 (v128.load (local.get $p)))
        (local.set $c01 (v128.load offset=16 (local.get $p)))
        (local.set $p (i32.add (local.get $p) (local.get $ldc)))
        (local.set $c10 (v128.load (local.get $p)))
        (local.set $c11 (v128.load offset=16 (local.get $p)))
        (local.set $p (i32.add (local.get $p) (local.get $ldc)))
        (local.set $c20 (v128.load (local.get $p)))
        (local.set $c21 (v128.load offset=16 (local.get $p)))
        (local.set $p (i32.add (local.get $p) (local.get $ldc)))
        (local.set $c30 (v128.load (local.get $p)))
        (local.set $c31 (v128.load offset=16 (local.get $p)))))
    (if (i32.eq (local.get $init) (i32.const 2))
      (then
        (local.set $c00 (v128.load (local.get $bp)))
        (local.set $c01 (v128.load offset=16 (local.get $bp)))
        (local.set $c10 (local.get $c00))
        (local.set $c11 (local.get $c01))
        (local.set $c20 (local.get $c00))
        (local.set $c21 (local.get $c01))
        (local.set $c30 (local.get $c00))
        (local.set $c31 (local.get $c01))))
    ;; One k step per iteration: V8 hoists every load of an iteration to its
    ;; top, so unrolling would need more than the 15 vector registers it
    ;; allocates on x64 and spill accumulators.
    (loop $k
      (local.set $b0 (v128.load (local.get $pb)))
      (local.set $b1 (v128.load offset=16 (local.get $pb)))
      (local.set $av (v128.load32_splat (local.get $pa)))
      (local.set $c00 (f32x4.relaxed_madd (local.get $av) (local.get $b0) (local.get $c00)))
      (local.set $c01 (f32x4.relaxed_madd (local.get $av) (local.get $b1) (local.get $c01)))
      (local.set $av (v128.load32_splat offset=4 (local.get $pa)))
      (local.set $c10 (f32x4.relaxed_madd (local.get $av) (local.get $b0) (local.get $c10)))
      (local.set $c11 (f32x4.relaxed_madd (local.get $av) (local.get $b1) (local.get $c11)))
      (local.set $av (v128.load32_splat offset=8 (local.get $pa)))
      (local.set $c20 (f32x4.relaxed_madd (local.get $av) (local.get $b0) (local.get $c20)))
      (local.set $c21 (f32x4.relaxed_madd (local.get $av) (local.get $b1) (local.get $c21)))
      (local.set $av (v128.load32_splat offset=12 (local.get $pa)))
      (local.set $c30 (f32x4.relaxed_madd (local.get $av) (local.get $b0) (local.get $c30)))
      (local.set $c31 (f32x4.relaxed_madd (local.get $av) (local.get $b1) (local.get $c31)))
      (local.set $pa (i32.add (local.get $pa) (i32.const 16)))
      (local.set $pb (i32.add (local.get $pb) (i32.const 32)))
      (br_if $k (local.tee $kc (i32.sub (local.get $kc) (i32.const 1)))))
    (v128.store (local.get $cp) (local.get $c00))
    (v128.store offset=16 (local.get $cp) (local.get $c01))
    (local.set $cp (i32.add (local.get $cp) (local.get $ldc)))
    (v128.store (local.get $cp) (local.get $c10))
    (v128.store offset=16 (local.get $cp) (local.get $c11))
    (local.set $cp (i32.add (local.get $cp) (local.get $ldc)))
    (v128.store (local.get $cp) (local.get $c20))
    (v128.store offset=16 (local.get $cp) (local.get $c21))
    (local.set $cp (i32.add (local.get $cp) (local.get $ldc)))
    (v128.store (local.get $cp) (local.get $c30))
    (v128.store offset=16 (local.get $cp) (local.get $c31)))

  ;; Pack B(k0..k0+kc, all N columns) into panels of 8 columns: panel p at
  ;; dst + p*kc*32, element (k, j) at + k*32 + j*4; columns >= N are zero.
  (func $packB (param $b i32) (param $sBk i32) (param $sBn i32) (param $N i32) (param $kc i32) (param $dst i32)
    (local $n0 i32) (local $nr i32) (local $k i32) (local $j i32) (local $src i32) (local $d i32)
    (local.set $n0 (i32.const 0))
    (loop $panels
      (local.set $nr (i32.sub (local.get $N) (local.get $n0)))
      (if (i32.gt_s (local.get $nr) (i32.const 8)) (then (local.set $nr (i32.const 8))))
      (if (i32.and (i32.eq (local.get $sBn) (i32.const 4)) (i32.eq (local.get $nr) (i32.const 8)))
        (then
          ;; Rows of B are contiguous: two vector copies per k.
          (local.set $src (i32.add (local.get $b) (i32.shl (local.get $n0) (i32.const 2))))
          (local.set $k (local.get $kc))
          (loop $rows
            (v128.store (local.get $dst) (v128.load (local.get $src)))
            (v128.store offset=16 (local.get $dst) (v128.load offset=16 (local.get $src)))
            (local.set $src (i32.add (local.get $src) (local.get $sBk)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
            (br_if $rows (local.tee $k (i32.sub (local.get $k) (i32.const 1))))))
        (else
          ;; General strides: one column at a time (sequential reads when B is
          ;; transposed, i.e. sBk = 4), zeros beyond N.
          (local.set $j (i32.const 0))
          (loop $cols
            (local.set $d (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2))))
            (local.set $k (local.get $kc))
            (if (i32.lt_s (local.get $j) (local.get $nr))
              (then
                (local.set $src (i32.add (local.get $b)
                  (i32.mul (i32.add (local.get $n0) (local.get $j)) (local.get $sBn))))
                (loop $kk
                  (f32.store (local.get $d) (f32.load (local.get $src)))
                  (local.set $src (i32.add (local.get $src) (local.get $sBk)))
                  (local.set $d (i32.add (local.get $d) (i32.const 32)))
                  (br_if $kk (local.tee $k (i32.sub (local.get $k) (i32.const 1))))))
              (else
                (loop $kz
                  (f32.store (local.get $d) (f32.const 0))
                  (local.set $d (i32.add (local.get $d) (i32.const 32)))
                  (br_if $kz (local.tee $k (i32.sub (local.get $k) (i32.const 1)))))))
            (br_if $cols (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 1))) (i32.const 8))))
          (local.set $dst (i32.add (local.get $dst) (i32.shl (local.get $kc) (i32.const 5))))))
      (br_if $panels (i32.lt_s (local.tee $n0 (i32.add (local.get $n0) (i32.const 8))) (local.get $N)))))

  ;; Pack alpha * A(m0..m0+mr, k0..k0+kc) (a points at A(m0, k0)) into [kc][4],
  ;; rows >= mr zero.
  (func $packA (param $a i32) (param $sAm i32) (param $sAk i32) (param $mr i32) (param $kc i32) (param $dst i32) (param $alpha f32)
    (local $i i32) (local $k i32) (local $src i32) (local $d i32) (local $al v128)
    (local $x0 v128) (local $x1 v128) (local $x2 v128) (local $x3 v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local.set $al (f32x4.splat (local.get $alpha)))
    (if (i32.eq (local.get $mr) (i32.const 4))
      (then
        (if (i32.eq (local.get $sAm) (i32.const 4))
          (then
            ;; The 4 rows are adjacent in memory for each k (A transposed).
            (local.set $k (local.get $kc))
            (loop $kk
              (v128.store (local.get $dst) (f32x4.mul (local.get $al) (v128.load (local.get $a))))
              (local.set $a (i32.add (local.get $a) (local.get $sAk)))
              (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
              (br_if $kk (local.tee $k (i32.sub (local.get $k) (i32.const 1)))))
            (return)))
        (if (i32.eq (local.get $sAk) (i32.const 4))
          (then
            ;; Rows are contiguous along k: 4x4 register transposes, 4 k at a time.
            (local.set $k (local.get $kc))
            (block $done
              (loop $k4
                (br_if $done (i32.lt_s (local.get $k) (i32.const 4)))
                (local.set $src (local.get $a))
                (local.set $x0 (v128.load (local.get $src)))
                (local.set $src (i32.add (local.get $src) (local.get $sAm)))
                (local.set $x1 (v128.load (local.get $src)))
                (local.set $src (i32.add (local.get $src) (local.get $sAm)))
                (local.set $x2 (v128.load (local.get $src)))
                (local.set $src (i32.add (local.get $src) (local.get $sAm)))
                (local.set $x3 (v128.load (local.get $src)))
                (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $x0) (local.get $x1)))
                (local.set $t1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $x0) (local.get $x1)))
                (local.set $t2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $x2) (local.get $x3)))
                (local.set $t3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $x2) (local.get $x3)))
                (v128.store (local.get $dst) (f32x4.mul (local.get $al)
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t0) (local.get $t2))))
                (v128.store offset=16 (local.get $dst) (f32x4.mul (local.get $al)
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t0) (local.get $t2))))
                (v128.store offset=32 (local.get $dst) (f32x4.mul (local.get $al)
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t1) (local.get $t3))))
                (v128.store offset=48 (local.get $dst) (f32x4.mul (local.get $al)
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t1) (local.get $t3))))
                (local.set $a (i32.add (local.get $a) (i32.const 16)))
                (local.set $dst (i32.add (local.get $dst) (i32.const 64)))
                (local.set $k (i32.sub (local.get $k) (i32.const 4)))
                (br $k4)))
            ;; the last kc % 4 steps
            (block $tail
              (loop $k1
                (br_if $tail (i32.eqz (local.get $k)))
                (local.set $src (local.get $a))
                (local.set $x0 (f32x4.replace_lane 0 (local.get $x0) (f32.load (local.get $src))))
                (local.set $src (i32.add (local.get $src) (local.get $sAm)))
                (local.set $x0 (f32x4.replace_lane 1 (local.get $x0) (f32.load (local.get $src))))
                (local.set $src (i32.add (local.get $src) (local.get $sAm)))
                (local.set $x0 (f32x4.replace_lane 2 (local.get $x0) (f32.load (local.get $src))))
                (local.set $src (i32.add (local.get $src) (local.get $sAm)))
                (local.set $x0 (f32x4.replace_lane 3 (local.get $x0) (f32.load (local.get $src))))
                (v128.store (local.get $dst) (f32x4.mul (local.get $al) (local.get $x0)))
                (local.set $a (i32.add (local.get $a) (i32.const 4)))
                (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
                (local.set $k (i32.sub (local.get $k) (i32.const 1)))
                (br $k1)))
            (return)))))
    (local.set $i (i32.const 0))
    (loop $rows
      (local.set $d (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2))))
      (local.set $k (local.get $kc))
      (if (i32.lt_s (local.get $i) (local.get $mr))
        (then
          (local.set $src (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $sAm))))
          (loop $kk
            (f32.store (local.get $d) (f32.mul (local.get $alpha) (f32.load (local.get $src))))
            (local.set $src (i32.add (local.get $src) (local.get $sAk)))
            (local.set $d (i32.add (local.get $d) (i32.const 16)))
            (br_if $kk (local.tee $k (i32.sub (local.get $k) (i32.const 1))))))
        (else
          (loop $kz
            (f32.store (local.get $d) (f32.const 0))
            (local.set $d (i32.add (local.get $d) (i32.const 16)))
            (br_if $kz (local.tee $k (i32.sub (local.get $k) (i32.const 1)))))))
      (br_if $rows (i32.lt_s (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 4)))))

  ;; A partial tile (mr < 4 rows or nr < 8 columns) through the 4x8 scratch
  ;; tile ct: start it from C / the bias / 0 as init says, run the micro
  ;; kernel on it, copy the valid part back.
  (func $edgeTile (param $pa i32) (param $pb i32) (param $kc i32) (param $cp i32) (param $ldc i32)
                  (param $mr i32) (param $nr i32) (param $init i32) (param $bp i32) (param $ct i32)
    (local $i i32) (local $j i32) (local $v f32)
    (local.set $i (i32.const 0))
    (loop $li
      (local.set $j (i32.const 0))
      (loop $lj
        (local.set $v (f32.const 0))
        (if (i32.and (i32.lt_s (local.get $i) (local.get $mr)) (i32.lt_s (local.get $j) (local.get $nr)))
          (then
            (if (i32.eq (local.get $init) (i32.const 1))
              (then (local.set $v (f32.load (i32.add (local.get $cp) (i32.add (i32.mul (local.get $i) (local.get $ldc)) (i32.shl (local.get $j) (i32.const 2))))))))
            (if (i32.eq (local.get $init) (i32.const 2))
              (then (local.set $v (f32.load (i32.add (local.get $bp) (i32.shl (local.get $j) (i32.const 2)))))))))
        (f32.store (i32.add (local.get $ct) (i32.shl (i32.add (i32.shl (local.get $i) (i32.const 3)) (local.get $j)) (i32.const 2))) (local.get $v))
        (br_if $lj (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 1))) (i32.const 8))))
      (br_if $li (i32.lt_s (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 4))))
    (call $mk4x8 (local.get $pa) (local.get $pb) (local.get $kc) (local.get $ct) (i32.const 32) (i32.const 1) (i32.const 0))
    (local.set $i (i32.const 0))
    (loop $si
      (local.set $j (i32.const 0))
      (loop $sj
        (f32.store (i32.add (local.get $cp) (i32.add (i32.mul (local.get $i) (local.get $ldc)) (i32.shl (local.get $j) (i32.const 2))))
          (f32.load (i32.add (local.get $ct) (i32.shl (i32.add (i32.shl (local.get $i) (i32.const 3)) (local.get $j)) (i32.const 2)))))
        (br_if $sj (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 1))) (local.get $nr))))
      (br_if $si (i32.lt_s (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $mr)))))

  ;; C = 0 (or unchanged when accumulating) + bias, for an empty sum (K = 0); G = gelu(C).
  (func $gemmEmpty (param $c i32) (param $sCm i32) (param $M i32) (param $N i32) (param $accum i32) (param $bias i32) (param $g i32)
    (local $i i32) (local $j i32) (local $dst i32) (local $v f32)
    (local.set $i (i32.const 0))
    (loop $zr
      (local.set $j (i32.const 0))
      (loop $zc
        (local.set $dst (i32.add (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $sCm))) (i32.shl (local.get $j) (i32.const 2))))
        (local.set $v (if (result f32) (local.get $accum) (then (f32.load (local.get $dst))) (else (f32.const 0))))
        (if (local.get $bias)
          (then (local.set $v (f32.add (local.get $v) (f32.load (i32.add (local.get $bias) (i32.shl (local.get $j) (i32.const 2))))))))
        (f32.store (local.get $dst) (local.get $v))
        (br_if $zc (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 1))) (local.get $N))))
      (br_if $zr (i32.lt_s (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $M))))
    (if (local.get $g) (then (call $geluRows (local.get $c) (local.get $g) (local.get $sCm) (local.get $M) (local.get $N)))))

  ;; G = gelu(C) on M rows of N floats, row stride sCm for both.
  (func $geluRows (param $c i32) (param $g i32) (param $sCm i32) (param $M i32) (param $N i32)
    (if (i32.eq (local.get $sCm) (i32.shl (local.get $N) (i32.const 2)))
      (then
        (call $gelu (local.get $c) (local.get $g) (i32.mul (local.get $M) (local.get $N)))
        (return)))
    (loop $r
      (call $gelu (local.get $c) (local.get $g) (local.get $N))
      (local.set $c (i32.add (local.get $c) (local.get $sCm)))
      (local.set $g (i32.add (local.get $g) (local.get $sCm)))
      (br_if $r (local.tee $M (i32.sub (local.get $M) (i32.const 1))))))

  (func $gemmx
    (param $a i32) (param $sAm i32) (param $sAk i32)
    (param $b i32) (param $sBk i32) (param $sBn i32)
    (param $c i32) (param $sCm i32)
    (param $M i32) (param $N i32) (param $K i32)
    (param $alpha f32) (param $accum i32) (param $bias i32) (param $g i32) (param $ws i32)
    (local $k0 i32) (local $kc i32) (local $m0 i32) (local $mc i32) (local $mr i32) (local $n0 i32) (local $nr i32)
    (local $ap i32) (local $ct i32) (local $init i32) (local $pb i32) (local $cp i32) (local $t i32) (local $pa i32)
    (local $npad i32) (local $last i32)
    (if (i32.or (i32.le_s (local.get $M) (i32.const 0)) (i32.le_s (local.get $N) (i32.const 0))) (then (return)))
    (if (i32.le_s (local.get $K) (i32.const 0))
      (then
        (call $gemmEmpty (local.get $c) (local.get $sCm) (local.get $M) (local.get $N) (local.get $accum) (local.get $bias) (local.get $g))
        (return)))
    (local.set $npad (i32.and (i32.add (local.get $N) (i32.const 7)) (i32.const -8)))
    (local.set $ap (i32.add (local.get $ws) (i32.shl (i32.mul (local.get $npad) (i32.const 256)) (i32.const 2))))
    (local.set $ct (i32.add (local.get $ap) (i32.const 65536)))
    (local.set $k0 (i32.const 0))
    (loop $kchunks
      (local.set $kc (i32.sub (local.get $K) (local.get $k0)))
      (if (i32.gt_s (local.get $kc) (i32.const 256)) (then (local.set $kc (i32.const 256))))
      (local.set $last (i32.ge_s (i32.add (local.get $k0) (local.get $kc)) (local.get $K)))
      (local.set $init
        (if (result i32) (i32.or (local.get $accum) (i32.gt_s (local.get $k0) (i32.const 0)))
          (then (i32.const 1))
          (else (if (result i32) (local.get $bias) (then (i32.const 2)) (else (i32.const 0))))))
      (call $packB (i32.add (local.get $b) (i32.mul (local.get $k0) (local.get $sBk)))
                   (local.get $sBk) (local.get $sBn) (local.get $N) (local.get $kc) (local.get $ws))
      (local.set $m0 (i32.const 0))
      (loop $mblocks
        (local.set $mc (i32.sub (local.get $M) (local.get $m0)))
        (if (i32.gt_s (local.get $mc) (i32.const 64)) (then (local.set $mc (i32.const 64))))
        ;; pack the block's A panels
        (local.set $t (i32.const 0))
        (loop $pk
          (local.set $mr (i32.sub (local.get $mc) (local.get $t)))
          (if (i32.gt_s (local.get $mr) (i32.const 4)) (then (local.set $mr (i32.const 4))))
          (call $packA (i32.add (local.get $a) (i32.add (i32.mul (i32.add (local.get $m0) (local.get $t)) (local.get $sAm))
                                                        (i32.mul (local.get $k0) (local.get $sAk))))
                       (local.get $sAm) (local.get $sAk) (local.get $mr) (local.get $kc)
                       (i32.add (local.get $ap) (i32.mul (local.get $t) (i32.shl (local.get $kc) (i32.const 2))))
                       (local.get $alpha))
          (br_if $pk (i32.lt_s (local.tee $t (i32.add (local.get $t) (i32.const 4))) (local.get $mc))))
        ;; every B panel against the block's A panels
        (local.set $n0 (i32.const 0))
        (local.set $pb (local.get $ws))
        (loop $ntiles
          (local.set $nr (i32.sub (local.get $N) (local.get $n0)))
          (if (i32.gt_s (local.get $nr) (i32.const 8)) (then (local.set $nr (i32.const 8))))
          (local.set $t (i32.const 0))
          (local.set $pa (local.get $ap))
          (local.set $cp (i32.add (local.get $c) (i32.add (i32.mul (local.get $m0) (local.get $sCm))
                                                          (i32.shl (local.get $n0) (i32.const 2)))))
          (loop $mtiles
            (local.set $mr (i32.sub (local.get $mc) (local.get $t)))
            (if (i32.gt_s (local.get $mr) (i32.const 4)) (then (local.set $mr (i32.const 4))))
            (if (i32.and (i32.eq (local.get $mr) (i32.const 4)) (i32.eq (local.get $nr) (i32.const 8)))
              (then
                (call $mk4x8 (local.get $pa) (local.get $pb) (local.get $kc) (local.get $cp) (local.get $sCm)
                             (local.get $init) (i32.add (local.get $bias) (i32.shl (local.get $n0) (i32.const 2)))))
              (else
                (call $edgeTile (local.get $pa) (local.get $pb) (local.get $kc) (local.get $cp) (local.get $sCm)
                                (local.get $mr) (local.get $nr) (local.get $init)
                                (i32.add (local.get $bias) (i32.shl (local.get $n0) (i32.const 2))) (local.get $ct))))
            (local.set $pa (i32.add (local.get $pa) (i32.shl (local.get $kc) (i32.const 4))))
            (local.set $cp (i32.add (local.get $cp) (i32.shl (local.get $sCm) (i32.const 2))))
            (br_if $mtiles (i32.lt_s (local.tee $t (i32.add (local.get $t) (i32.const 4))) (local.get $mc))))
          (local.set $pb (i32.add (local.get $pb) (i32.shl (local.get $kc) (i32.const 5))))
          (br_if $ntiles (i32.lt_s (local.tee $n0 (i32.add (local.get $n0) (i32.const 8))) (local.get $N))))
        (if (i32.and (local.get $last) (i32.ne (local.get $g) (i32.const 0)))
          (then
            (call $geluRows (i32.add (local.get $c) (i32.mul (local.get $m0) (local.get $sCm)))
                            (i32.add (local.get $g) (i32.mul (local.get $m0) (local.get $sCm)))
                            (local.get $sCm) (local.get $mc) (local.get $N))))
        (br_if $mblocks (i32.lt_s (local.tee $m0 (i32.add (local.get $m0) (i32.const 64))) (local.get $M))))
      (br_if $kchunks (i32.lt_s (local.tee $k0 (i32.add (local.get $k0) (i32.const 256))) (local.get $K)))))

  (func $gemm (export "gemm")
    (param $a i32) (param $sAm i32) (param $sAk i32)
    (param $b i32) (param $sBk i32) (param $sBn i32)
    (param $c i32) (param $sCm i32)
    (param $M i32) (param $N i32) (param $K i32)
    (param $alpha f32) (param $accum i32) (param $ws i32)
    (call $gemmx (local.get $a) (local.get $sAm) (local.get $sAk) (local.get $b) (local.get $sBk) (local.get $sBn)
                 (local.get $c) (local.get $sCm) (local.get $M) (local.get $N) (local.get $K)
                 (local.get $alpha) (local.get $accum) (i32.const 0) (i32.const 0) (local.get $ws)))

  ;; Dense layer: C = op(A)·op(B) + bias (bias 0: none); when g != 0 also
  ;; G = gelu(C) (same layout as C). G gets the activation, C keeps the
  ;; pre-activation the backward pass needs.
  (func (export "dense")
    (param $a i32) (param $sAm i32) (param $sAk i32)
    (param $b i32) (param $sBk i32) (param $sBn i32)
    (param $c i32) (param $sCm i32)
    (param $M i32) (param $N i32) (param $K i32)
    (param $bias i32) (param $g i32) (param $ws i32)
    (call $gemmx (local.get $a) (local.get $sAm) (local.get $sAk) (local.get $b) (local.get $sBk) (local.get $sBn)
                 (local.get $c) (local.get $sCm) (local.get $M) (local.get $N) (local.get $K)
                 (f32.const 1) (i32.const 0) (local.get $bias) (local.get $g) (local.get $ws)))

  ;; Batched GEMM: for i < batch, gemm on a + i*bA, b + i*bB, c + i*bC (a
  ;; batch stride of 0 broadcasts that operand). C is [batch, M, N] contiguous.
  (func (export "bmm")
    (param $a i32) (param $bA i32) (param $sAm i32) (param $sAk i32)
    (param $b i32) (param $bB i32) (param $sBk i32) (param $sBn i32)
    (param $c i32) (param $batch i32) (param $M i32) (param $N i32) (param $K i32)
    (param $alpha f32) (param $ws i32)
    (local $i i32) (local $bC i32)
    (local.set $bC (i32.shl (i32.mul (local.get $M) (local.get $N)) (i32.const 2)))
    (loop $batches
      (call $gemm (local.get $a) (local.get $sAm) (local.get $sAk)
                  (local.get $b) (local.get $sBk) (local.get $sBn)
                  (local.get $c) (i32.shl (local.get $N) (i32.const 2))
                  (local.get $M) (local.get $N) (local.get $K)
                  (local.get $alpha) (i32.const 0) (local.get $ws))
      (local.set $a (i32.add (local.get $a) (local.get $bA)))
      (local.set $b (i32.add (local.get $b) (local.get $bB)))
      (local.set $c (i32.add (local.get $c) (local.get $bC)))
      (br_if $batches (i32.lt_s (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $batch)))))

  ;; ---------------------------------------------------------------------
  ;; Data movement
  ;; ---------------------------------------------------------------------

  ;; Batched 2-D transpose: dst[b][c][r] = src[b][r][c], src [batch, R, C]; dst rows
  ;; are ldd floats apart (ldd = R, or the full row count when R is a slice of rows).
  ;; 4x4 register transposes inside 32x32 tiles (both tiles stay in L1).
  (func (export "transpose") (param $src i32) (param $dst i32) (param $batch i32) (param $R i32) (param $C i32) (param $ldd i32)
    (local $bi i32) (local $r0 i32) (local $c0 i32) (local $r i32) (local $c i32) (local $rend i32) (local $cend i32)
    (local $rowB i32) (local $colB i32) (local $p i32) (local $q i32)
    (local $x0 v128) (local $x1 v128) (local $x2 v128) (local $x3 v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local.set $rowB (i32.shl (local.get $C) (i32.const 2)))
    (local.set $colB (i32.shl (local.get $ldd) (i32.const 2)))
    (loop $batches
      (local.set $r0 (i32.const 0))
      (loop $rt
        (local.set $rend (i32.add (local.get $r0) (i32.const 32)))
        (if (i32.gt_s (local.get $rend) (local.get $R)) (then (local.set $rend (local.get $R))))
        (local.set $c0 (i32.const 0))
        (loop $ct
          (local.set $cend (i32.add (local.get $c0) (i32.const 32)))
          (if (i32.gt_s (local.get $cend) (local.get $C)) (then (local.set $cend (local.get $C))))
          ;; 4x4 blocks of this tile
          (local.set $r (local.get $r0))
          (block $rdone
            (loop $rb
              (br_if $rdone (i32.gt_s (i32.add (local.get $r) (i32.const 4)) (local.get $rend)))
              (local.set $c (local.get $c0))
              (block $cdone
                (loop $cb
                  (br_if $cdone (i32.gt_s (i32.add (local.get $c) (i32.const 4)) (local.get $cend)))
                  (local.set $p (i32.add (local.get $src) (i32.add (i32.mul (local.get $r) (local.get $rowB)) (i32.shl (local.get $c) (i32.const 2)))))
                  (local.set $x0 (v128.load (local.get $p)))
                  (local.set $p (i32.add (local.get $p) (local.get $rowB)))
                  (local.set $x1 (v128.load (local.get $p)))
                  (local.set $p (i32.add (local.get $p) (local.get $rowB)))
                  (local.set $x2 (v128.load (local.get $p)))
                  (local.set $p (i32.add (local.get $p) (local.get $rowB)))
                  (local.set $x3 (v128.load (local.get $p)))
                  (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $x0) (local.get $x1)))
                  (local.set $t1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $x0) (local.get $x1)))
                  (local.set $t2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $x2) (local.get $x3)))
                  (local.set $t3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $x2) (local.get $x3)))
                  (local.set $q (i32.add (local.get $dst) (i32.add (i32.mul (local.get $c) (local.get $colB)) (i32.shl (local.get $r) (i32.const 2)))))
                  (v128.store (local.get $q) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t0) (local.get $t2)))
                  (local.set $q (i32.add (local.get $q) (local.get $colB)))
                  (v128.store (local.get $q) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t0) (local.get $t2)))
                  (local.set $q (i32.add (local.get $q) (local.get $colB)))
                  (v128.store (local.get $q) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t1) (local.get $t3)))
                  (local.set $q (i32.add (local.get $q) (local.get $colB)))
                  (v128.store (local.get $q) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t1) (local.get $t3)))
                  (local.set $c (i32.add (local.get $c) (i32.const 4)))
                  (br $cb)))
              ;; leftover columns of these 4 rows
              (block $cx
                (loop $cl
                  (br_if $cx (i32.ge_s (local.get $c) (local.get $cend)))
                  (local.set $p (i32.add (local.get $src) (i32.add (i32.mul (local.get $r) (local.get $rowB)) (i32.shl (local.get $c) (i32.const 2)))))
                  (local.set $q (i32.add (local.get $dst) (i32.add (i32.mul (local.get $c) (local.get $colB)) (i32.shl (local.get $r) (i32.const 2)))))
                  (f32.store (local.get $q) (f32.load (local.get $p)))
                  (f32.store offset=4 (local.get $q) (f32.load (i32.add (local.get $p) (local.get $rowB))))
                  (f32.store offset=8 (local.get $q) (f32.load (i32.add (local.get $p) (i32.shl (local.get $rowB) (i32.const 1)))))
                  (f32.store offset=12 (local.get $q) (f32.load (i32.add (local.get $p) (i32.mul (local.get $rowB) (i32.const 3)))))
                  (local.set $c (i32.add (local.get $c) (i32.const 1)))
                  (br $cl)))
              (local.set $r (i32.add (local.get $r) (i32.const 4)))
              (br $rb)))
          ;; leftover rows of the tile
          (block $rx
            (loop $rl
              (br_if $rx (i32.ge_s (local.get $r) (local.get $rend)))
              (local.set $c (local.get $c0))
              (loop $cl2
                (f32.store (i32.add (local.get $dst) (i32.add (i32.mul (local.get $c) (local.get $colB)) (i32.shl (local.get $r) (i32.const 2))))
                  (f32.load (i32.add (local.get $src) (i32.add (i32.mul (local.get $r) (local.get $rowB)) (i32.shl (local.get $c) (i32.const 2))))))
                (br_if $cl2 (i32.lt_s (local.tee $c (i32.add (local.get $c) (i32.const 1))) (local.get $cend))))
              (local.set $r (i32.add (local.get $r) (i32.const 1)))
              (br $rl)))
          (br_if $ct (i32.lt_s (local.tee $c0 (i32.add (local.get $c0) (i32.const 32))) (local.get $C))))
        (br_if $rt (i32.lt_s (local.tee $r0 (i32.add (local.get $r0) (i32.const 32))) (local.get $R))))
      (local.set $src (i32.add (local.get $src) (i32.mul (local.get $R) (local.get $rowB))))
      (local.set $dst (i32.add (local.get $dst) (i32.mul (local.get $R) (local.get $rowB))))
      (br_if $batches (i32.lt_s (local.tee $bi (i32.add (local.get $bi) (i32.const 1))) (local.get $batch)))))

  ;; Copy `len` bytes (a multiple of 4) from src to dst; vectors then floats.
  (func $copy (param $src i32) (param $dst i32) (param $len i32)
    (block $done
      (loop $v
        (br_if $done (i32.lt_s (local.get $len) (i32.const 16)))
        (v128.store (local.get $dst) (v128.load (local.get $src)))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $len (i32.sub (local.get $len) (i32.const 16)))
        (br $v)))
    (block $done2
      (loop $s
        (br_if $done2 (i32.le_s (local.get $len) (i32.const 0)))
        (f32.store (local.get $dst) (f32.load (local.get $src)))
        (local.set $src (i32.add (local.get $src) (i32.const 4)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
        (local.set $len (i32.sub (local.get $len) (i32.const 4)))
        (br $s))))

  ;; Strided row gather (transposes that keep the last axis): for
  ;; i0 < n0, i1 < n1, i2 < n2 copy `len` bytes from src + i0*s0 + i1*s1 + i2*s2
  ;; to consecutive places in dst.
  (func (export "gather_rows") (param $src i32) (param $dst i32)
    (param $n0 i32) (param $s0 i32) (param $n1 i32) (param $s1 i32) (param $n2 i32) (param $s2 i32) (param $len i32)
    (local $i0 i32) (local $i1 i32) (local $i2 i32) (local $p0 i32) (local $p1 i32) (local $p2 i32)
    (local.set $p0 (local.get $src))
    (loop $l0
      (local.set $p1 (local.get $p0))
      (local.set $i1 (i32.const 0))
      (loop $l1
        (local.set $p2 (local.get $p1))
        (local.set $i2 (i32.const 0))
        (loop $l2
          (call $copy (local.get $p2) (local.get $dst) (local.get $len))
          (local.set $dst (i32.add (local.get $dst) (local.get $len)))
          (local.set $p2 (i32.add (local.get $p2) (local.get $s2)))
          (br_if $l2 (i32.lt_s (local.tee $i2 (i32.add (local.get $i2) (i32.const 1))) (local.get $n2))))
        (local.set $p1 (i32.add (local.get $p1) (local.get $s1)))
        (br_if $l1 (i32.lt_s (local.tee $i1 (i32.add (local.get $i1) (i32.const 1))) (local.get $n1))))
      (local.set $p0 (i32.add (local.get $p0) (local.get $s0)))
      (br_if $l0 (i32.lt_s (local.tee $i0 (i32.add (local.get $i0) (i32.const 1))) (local.get $n0)))))

  ;; ---------------------------------------------------------------------
  ;; Reductions
  ;; ---------------------------------------------------------------------

  ;; Column sums of src [R, C] (row stride ld floats): dst[c] = scale * sum_r src[r][c]. Columns in
  ;; blocks of 16 held in registers while the rows stream past.
  (func (export "colsum") (param $src i32) (param $dst i32) (param $R i32) (param $C i32) (param $ld i32) (param $scale f32)
    (local $c0 i32) (local $r i32) (local $p i32) (local $rowB i32) (local $sc v128)
    (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128) (local $f f32)
    (local.set $rowB (i32.shl (local.get $ld) (i32.const 2)))
    (local.set $sc (f32x4.splat (local.get $scale)))
    (local.set $c0 (i32.const 0))
    (block $done16
      (loop $b16
        (br_if $done16 (i32.gt_s (i32.add (local.get $c0) (i32.const 16)) (local.get $C)))
        (local.set $p (i32.add (local.get $src) (i32.shl (local.get $c0) (i32.const 2))))
        (local.set $s0 (v128.const i32x4 0 0 0 0)) (local.set $s1 (v128.const i32x4 0 0 0 0))
        (local.set $s2 (v128.const i32x4 0 0 0 0)) (local.set $s3 (v128.const i32x4 0 0 0 0))
        (local.set $r (local.get $R))
        (loop $rows
          (local.set $s0 (f32x4.add (local.get $s0) (v128.load (local.get $p))))
          (local.set $s1 (f32x4.add (local.get $s1) (v128.load offset=16 (local.get $p))))
          (local.set $s2 (f32x4.add (local.get $s2) (v128.load offset=32 (local.get $p))))
          (local.set $s3 (f32x4.add (local.get $s3) (v128.load offset=48 (local.get $p))))
          (local.set $p (i32.add (local.get $p) (local.get $rowB)))
          (br_if $rows (local.tee $r (i32.sub (local.get $r) (i32.const 1)))))
        (local.set $p (i32.add (local.get $dst) (i32.shl (local.get $c0) (i32.const 2))))
        (v128.store (local.get $p) (f32x4.mul (local.get $s0) (local.get $sc)))
        (v128.store offset=16 (local.get $p) (f32x4.mul (local.get $s1) (local.get $sc)))
        (v128.store offset=32 (local.get $p) (f32x4.mul (local.get $s2) (local.get $sc)))
        (v128.store offset=48 (local.get $p) (f32x4.mul (local.get $s3) (local.get $sc)))
        (local.set $c0 (i32.add (local.get $c0) (i32.const 16)))
        (br $b16)))
    (block $done4
      (loop $b4
        (br_if $done4 (i32.gt_s (i32.add (local.get $c0) (i32.const 4)) (local.get $C)))
        (local.set $p (i32.add (local.get $src) (i32.shl (local.get $c0) (i32.const 2))))
        (local.set $s0 (v128.const i32x4 0 0 0 0))
        (local.set $r (local.get $R))
        (loop $rows4
          (local.set $s0 (f32x4.add (local.get $s0) (v128.load (local.get $p))))
          (local.set $p (i32.add (local.get $p) (local.get $rowB)))
          (br_if $rows4 (local.tee $r (i32.sub (local.get $r) (i32.const 1)))))
        (v128.store (i32.add (local.get $dst) (i32.shl (local.get $c0) (i32.const 2))) (f32x4.mul (local.get $s0) (local.get $sc)))
        (local.set $c0 (i32.add (local.get $c0) (i32.const 4)))
        (br $b4)))
    (block $done1
      (loop $b1
        (br_if $done1 (i32.ge_s (local.get $c0) (local.get $C)))
        (local.set $p (i32.add (local.get $src) (i32.shl (local.get $c0) (i32.const 2))))
        (local.set $f (f32.const 0))
        (local.set $r (local.get $R))
        (loop $rows1
          (local.set $f (f32.add (local.get $f) (f32.load (local.get $p))))
          (local.set $p (i32.add (local.get $p) (local.get $rowB)))
          (br_if $rows1 (local.tee $r (i32.sub (local.get $r) (i32.const 1)))))
        (f32.store (i32.add (local.get $dst) (i32.shl (local.get $c0) (i32.const 2))) (f32.mul (local.get $f) (local.get $scale)))
        (local.set $c0 (i32.add (local.get $c0) (i32.const 1)))
        (br $b1))))

  ;; ---------------------------------------------------------------------
  ;; Elementwise math
  ;; ---------------------------------------------------------------------

  ;; Load 4 floats at p, or only the first `rem` (1..3) of them, the rest 0.
  (func $loadPartial (param $p i32) (param $rem i32) (result v128)
    (local $v v128)
    (local.set $v (f32x4.replace_lane 0 (v128.const i32x4 0 0 0 0) (f32.load (local.get $p))))
    (if (i32.gt_s (local.get $rem) (i32.const 1)) (then (local.set $v (f32x4.replace_lane 1 (local.get $v) (f32.load offset=4 (local.get $p))))))
    (if (i32.gt_s (local.get $rem) (i32.const 2)) (then (local.set $v (f32x4.replace_lane 2 (local.get $v) (f32.load offset=8 (local.get $p))))))
    (local.get $v))

  (func $storePartial (param $p i32) (param $rem i32) (param $v v128)
    (f32.store (local.get $p) (f32x4.extract_lane 0 (local.get $v)))
    (if (i32.gt_s (local.get $rem) (i32.const 1)) (then (f32.store offset=4 (local.get $p) (f32x4.extract_lane 1 (local.get $v)))))
    (if (i32.gt_s (local.get $rem) (i32.const 2)) (then (f32.store offset=8 (local.get $p) (f32x4.extract_lane 2 (local.get $v))))))

  ;; dst[i] = exp(src[i]) for n floats (the tail through a zero-padded vector):
  ;; 2^n * p(r) with x = n*ln2 + r, |r| <= ln2/2, a degree-6 polynomial (Cephes
  ;; expf coefficients, ~1 ulp; its Horner steps are relaxed multiply-adds,
  ;; as in the GELU below); n is rounded with the 1.5*2^23 trick (its integer
  ;; lands in the low mantissa bits). pmin/pmax (one instruction each) take x
  ;; first so NaN passes through; x >= 88.7228 gives inf, x < -87 gives 0.
  (func (export "exp") (param $src i32) (param $dst i32) (param $n i32)
    (local $x v128) (local $h v128) (local $uf v128) (local $et v128) (local $en v128) (local $er v128) (local $ep v128) (local $c_lo v128) (local $c_hi v128) (local $c_l2e v128) (local $c_mag v128) (local $c_ln2h v128) (local $c_ln2l v128) (local $c_p0 v128) (local $c_p1 v128) (local $c_p2 v128) (local $c_p3 v128) (local $c_p4 v128) (local $c_p5 v128) (local $c_one v128) (local $c_127 v128)
    (local.set $c_lo (v128.const f32x4 -87 -87 -87 -87))
    (local.set $c_hi (v128.const f32x4 88.7228 88.7228 88.7228 88.7228))
    (local.set $c_l2e (v128.const f32x4 1.44269504088896341 1.44269504088896341 1.44269504088896341 1.44269504088896341))
    (local.set $c_mag (v128.const f32x4 12582912 12582912 12582912 12582912))
    (local.set $c_ln2h (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375))
    (local.set $c_ln2l (v128.const f32x4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4))
    (local.set $c_p0 (v128.const f32x4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4))
    (local.set $c_p1 (v128.const f32x4 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3))
    (local.set $c_p2 (v128.const f32x4 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3))
    (local.set $c_p3 (v128.const f32x4 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2))
    (local.set $c_p4 (v128.const f32x4 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1))
    (local.set $c_p5 (v128.const f32x4 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1))
    (local.set $c_one (v128.const f32x4 1 1 1 1))
    (local.set $c_127 (v128.const i32x4 127 127 127 127))
    (block $done
      (loop $v
        (br_if $done (i32.le_s (local.get $n) (i32.const 0)))
        (if (i32.ge_s (local.get $n) (i32.const 4))
          (then (local.set $x (v128.load (local.get $src))))
          (else (local.set $x (call $loadPartial (local.get $src) (local.get $n)))))
        ;; below the clamp the true value underflows to 0 (NaN stays NaN: comparisons with it are false)
        (local.set $uf (f32x4.lt (local.get $x) (local.get $c_lo)))
        (local.set $x (f32x4.pmax (f32x4.pmin (local.get $x) (local.get $c_hi)) (local.get $c_lo)))
        (local.set $et (f32x4.add (f32x4.mul (local.get $x) (local.get $c_l2e)) (local.get $c_mag)))
        (local.set $en (f32x4.sub (local.get $et) (local.get $c_mag)))
        (local.set $er (f32x4.sub (f32x4.sub (local.get $x) (f32x4.mul (local.get $en) (local.get $c_ln2h))) (f32x4.mul (local.get $en) (local.get $c_ln2l))))
        (local.set $ep (f32x4.relaxed_madd (local.get $c_p0) (local.get $er) (local.get $c_p1)))
        (local.set $ep (f32x4.relaxed_madd (local.get $ep) (local.get $er) (local.get $c_p2)))
        (local.set $ep (f32x4.relaxed_madd (local.get $ep) (local.get $er) (local.get $c_p3)))
        (local.set $ep (f32x4.relaxed_madd (local.get $ep) (local.get $er) (local.get $c_p4)))
        (local.set $ep (f32x4.relaxed_madd (local.get $ep) (local.get $er) (local.get $c_p5)))
        (local.set $ep (f32x4.add (f32x4.add (f32x4.mul (f32x4.mul (local.get $ep) (local.get $er)) (local.get $er)) (local.get $er)) (local.get $c_one)))
        (local.set $h (f32x4.mul (local.get $ep)
          (i32x4.shl (i32x4.add (i32x4.sub (local.get $et) (local.get $c_mag)) (local.get $c_127)) (i32.const 23))))
        (local.set $h (v128.andnot (local.get $h) (local.get $uf)))
        (if (i32.ge_s (local.get $n) (i32.const 4))
          (then (v128.store (local.get $dst) (local.get $h)))
          (else (call $storePartial (local.get $dst) (local.get $n) (local.get $h))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $n (i32.sub (local.get $n) (i32.const 4)))
        (br $v))))

  ;; Exact (erf) GELU: y = x * Phi(x) = x * (0.5 + 0.5*erf(x/sqrt2)). erf(u) for
  ;; |u| <= 3.92 (beyond, erf is +-1 in float32) as u*P(u^2)/Q(u^2), a degree-5/5
  ;; rational fitted for this kernel (erf-fit.py beside this file: least squares
  ;; with Lawson reweighting against a double-precision erf; max |error| 1.9e-8,
  ;; and 2.1e-7 of max(1,|x|) for the whole GELU in float32). No exp: half the work of an
  ;; erfc * exp formulation, which the forward pass does not need (the backward
  ;; pass, which needs the Gaussian anyway, keeps it). Constants live in locals.
  (func $gelu (export "gelu") (param $src i32) (param $dst i32) (param $n i32)
    (local $x v128) (local $u v128) (local $s v128) (local $pp v128) (local $qq v128) (local $h v128)
    (local $c_rs2 v128) (local $c_hi v128) (local $c_lo v128) (local $c_half v128) (local $c_one v128)
    (local $p0 v128) (local $p1 v128) (local $p2 v128) (local $p3 v128) (local $p4 v128) (local $p5 v128)
    (local $q1 v128) (local $q2 v128) (local $q3 v128) (local $q4 v128) (local $q5 v128)
    (local.set $c_rs2 (v128.const f32x4 0.7071067690849304 0.7071067690849304 0.7071067690849304 0.7071067690849304))
    (local.set $c_hi (v128.const f32x4 3.9200000762939453 3.9200000762939453 3.9200000762939453 3.9200000762939453))
    (local.set $c_lo (v128.const f32x4 -3.9200000762939453 -3.9200000762939453 -3.9200000762939453 -3.9200000762939453))
    (local.set $c_half (v128.const f32x4 0.5 0.5 0.5 0.5))
    (local.set $c_one (v128.const f32x4 1.0 1.0 1.0 1.0))
    (local.set $p0 (v128.const f32x4 1.1283791065216064 1.1283791065216064 1.1283791065216064 1.1283791065216064))
    (local.set $p1 (v128.const f32x4 0.1904143989086151 0.1904143989086151 0.1904143989086151 0.1904143989086151))
    (local.set $p2 (v128.const f32x4 0.05274928733706474 0.05274928733706474 0.05274928733706474 0.05274928733706474))
    (local.set $p3 (v128.const f32x4 0.0037658249493688345 0.0037658249493688345 0.0037658249493688345 0.0037658249493688345))
    (local.set $p4 (v128.const f32x4 0.000284865585854277 0.000284865585854277 0.000284865585854277 0.000284865585854277))
    (local.set $p5 (v128.const f32x4 2.0497473087743856e-06 2.0497473087743856e-06 2.0497473087743856e-06 2.0497473087743856e-06))
    (local.set $q1 (v128.const f32x4 0.5020831227302551 0.5020831227302551 0.5020831227302551 0.5020831227302551))
    (local.set $q2 (v128.const f32x4 0.11411195248365402 0.11411195248365402 0.11411195248365402 0.11411195248365402))
    (local.set $q3 (v128.const f32x4 0.01496964879333973 0.01496964879333973 0.01496964879333973 0.01496964879333973))
    (local.set $q4 (v128.const f32x4 0.0011625450570136309 0.0011625450570136309 0.0011625450570136309 0.0011625450570136309))
    (local.set $q5 (v128.const f32x4 3.808726978604682e-05 3.808726978604682e-05 3.808726978604682e-05 3.808726978604682e-05))
    (block $done
      (loop $v
        (br_if $done (i32.le_s (local.get $n) (i32.const 0)))
        (if (i32.ge_s (local.get $n) (i32.const 4))
          (then (local.set $x (v128.load (local.get $src))))
          (else (local.set $x (call $loadPartial (local.get $src) (local.get $n)))))
        (local.set $u (f32x4.pmax (f32x4.pmin (f32x4.mul (local.get $x) (local.get $c_rs2)) (local.get $c_hi)) (local.get $c_lo)))
        (local.set $s (f32x4.mul (local.get $u) (local.get $u)))
        (local.set $pp (f32x4.relaxed_madd (local.get $p5) (local.get $s) (local.get $p4)))
        (local.set $pp (f32x4.relaxed_madd (local.get $pp) (local.get $s) (local.get $p3)))
        (local.set $pp (f32x4.relaxed_madd (local.get $pp) (local.get $s) (local.get $p2)))
        (local.set $pp (f32x4.relaxed_madd (local.get $pp) (local.get $s) (local.get $p1)))
        (local.set $pp (f32x4.relaxed_madd (local.get $pp) (local.get $s) (local.get $p0)))
        (local.set $qq (f32x4.relaxed_madd (local.get $q5) (local.get $s) (local.get $q4)))
        (local.set $qq (f32x4.relaxed_madd (local.get $qq) (local.get $s) (local.get $q3)))
        (local.set $qq (f32x4.relaxed_madd (local.get $qq) (local.get $s) (local.get $q2)))
        (local.set $qq (f32x4.relaxed_madd (local.get $qq) (local.get $s) (local.get $q1)))
        (local.set $qq (f32x4.relaxed_madd (local.get $qq) (local.get $s) (local.get $c_one)))
        ;; Phi = 0.5 + 0.5 * u * P / Q ; y = x * Phi
        (local.set $h (f32x4.mul (local.get $x)
          (f32x4.relaxed_madd (f32x4.div (f32x4.mul (local.get $u) (local.get $pp)) (local.get $qq)) (local.get $c_half) (local.get $c_half))))
        (if (i32.ge_s (local.get $n) (i32.const 4))
          (then (v128.store (local.get $dst) (local.get $h)))
          (else (call $storePartial (local.get $dst) (local.get $n) (local.get $h))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $n (i32.sub (local.get $n) (i32.const 4)))
        (br $v))))

  ;; GELU backward: dx = dy * g(x), g(x) = Phi(x) + x * phi(x). g - 1/2 is odd, so
  ;; g(x) = 1/2 + v*P(v^2)/Q(v^2) with v = x clamped to [-6, 6] (beyond, g is 0 or 1
  ;; in float32), a degree-8/8 rational fitted like the forward's erf (erf-fit.py
  ;; --grad): max |error| 9e-8, 4e-7 in float32. No exp and no erfc: about half
  ;; the instructions of Phi via erfc * exp plus the Gaussian.
  (func (export "gelu_grad") (param $src i32) (param $dy i32) (param $dst i32) (param $n i32)
    (local $x v128) (local $v v128) (local $s v128) (local $pp v128) (local $qq v128) (local $h v128) (local $dyv v128)
    (local $c_hi v128) (local $c_lo v128) (local $c_half v128) (local $c_one v128)
    (local $p0 v128) (local $p1 v128) (local $p2 v128) (local $p3 v128) (local $p4 v128) (local $p5 v128) (local $p6 v128) (local $p7 v128) (local $p8 v128) (local $q1 v128) (local $q2 v128) (local $q3 v128) (local $q4 v128) (local $q5 v128) (local $q6 v128) (local $q7 v128) (local $q8 v128)
    (local.set $c_hi (v128.const f32x4 6.0 6.0 6.0 6.0))
    (local.set $c_lo (v128.const f32x4 -6.0 -6.0 -6.0 -6.0))
    (local.set $c_half (v128.const f32x4 0.5 0.5 0.5 0.5))
    (local.set $c_one (v128.const f32x4 1.0 1.0 1.0 1.0))
    (local.set $p0 (v128.const f32x4 0.7978852391242981 0.7978852391242981 0.7978852391242981 0.7978852391242981))
    (local.set $p1 (v128.const f32x4 -0.16055956482887268 -0.16055956482887268 -0.16055956482887268 -0.16055956482887268))
    (local.set $p2 (v128.const f32x4 0.015269642695784569 0.015269642695784569 0.015269642695784569 0.015269642695784569))
    (local.set $p3 (v128.const f32x4 0.0005818617064505816 0.0005818617064505816 0.0005818617064505816 0.0005818617064505816))
    (local.set $p4 (v128.const f32x4 -0.00013023703650105745 -0.00013023703650105745 -0.00013023703650105745 -0.00013023703650105745))
    (local.set $p5 (v128.const f32x4 4.203580101602711e-05 4.203580101602711e-05 4.203580101602711e-05 4.203580101602711e-05))
    (local.set $p6 (v128.const f32x4 3.322389474647025e-08 3.322389474647025e-08 3.322389474647025e-08 3.322389474647025e-08))
    (local.set $p7 (v128.const f32x4 1.2811227634301758e-07 1.2811227634301758e-07 1.2811227634301758e-07 1.2811227634301758e-07))
    (local.set $p8 (v128.const f32x4 6.495019522212431e-10 6.495019522212431e-10 6.495019522212431e-10 6.495019522212431e-10))
    (local.set $q1 (v128.const f32x4 0.13211031258106232 0.13211031258106232 0.13211031258106232 0.13211031258106232))
    (local.set $q2 (v128.const f32x4 -0.011850773356854916 -0.011850773356854916 -0.011850773356854916 -0.011850773356854916))
    (local.set $q3 (v128.const f32x4 -0.0011898361844941974 -0.0011898361844941974 -0.0011898361844941974 -0.0011898361844941974))
    (local.set $q4 (v128.const f32x4 0.0004278378328308463 0.0004278378328308463 0.0004278378328308463 0.0004278378328308463))
    (local.set $q5 (v128.const f32x4 0.00010783087782328948 0.00010783087782328948 0.00010783087782328948 0.00010783087782328948))
    (local.set $q6 (v128.const f32x4 9.39832807489438e-06 9.39832807489438e-06 9.39832807489438e-06 9.39832807489438e-06))
    (local.set $q7 (v128.const f32x4 7.271459026014782e-07 7.271459026014782e-07 7.271459026014782e-07 7.271459026014782e-07))
    (local.set $q8 (v128.const f32x4 3.087226119191655e-08 3.087226119191655e-08 3.087226119191655e-08 3.087226119191655e-08))
    (block $done
      (loop $v
        (br_if $done (i32.le_s (local.get $n) (i32.const 0)))
        (if (i32.ge_s (local.get $n) (i32.const 4))
          (then
            (local.set $x (v128.load (local.get $src)))
            (local.set $dyv (v128.load (local.get $dy))))
          (else
            (local.set $x (call $loadPartial (local.get $src) (local.get $n)))
            (local.set $dyv (call $loadPartial (local.get $dy) (local.get $n)))))
        (local.set $v (f32x4.pmax (f32x4.pmin (local.get $x) (local.get $c_hi)) (local.get $c_lo)))
        (local.set $s (f32x4.mul (local.get $v) (local.get $v)))
        (local.set $pp (f32x4.relaxed_madd (local.get $p8) (local.get $s) (local.get $p7)))
        (local.set $pp (f32x4.relaxed_madd (local.get $pp) (local.get $s) (local.get $p6)))
        (local.set $pp (f32x4.relaxed_madd (local.get $pp) (local.get $s) (local.get $p5)))
        (local.set $pp (f32x4.relaxed_madd (local.get $pp) (local.get $s) (local.get $p4)))
        (local.set $pp (f32x4.relaxed_madd (local.get $pp) (local.get $s) (local.get $p3)))
        (local.set $pp (f32x4.relaxed_madd (local.get $pp) (local.get $s) (local.get $p2)))
        (local.set $pp (f32x4.relaxed_madd (local.get $pp) (local.get $s) (local.get $p1)))
        (local.set $pp (f32x4.relaxed_madd (local.get $pp) (local.get $s) (local.get $p0)))
        (local.set $qq (f32x4.relaxed_madd (local.get $q8) (local.get $s) (local.get $q7)))
        (local.set $qq (f32x4.relaxed_madd (local.get $qq) (local.get $s) (local.get $q6)))
        (local.set $qq (f32x4.relaxed_madd (local.get $qq) (local.get $s) (local.get $q5)))
        (local.set $qq (f32x4.relaxed_madd (local.get $qq) (local.get $s) (local.get $q4)))
        (local.set $qq (f32x4.relaxed_madd (local.get $qq) (local.get $s) (local.get $q3)))
        (local.set $qq (f32x4.relaxed_madd (local.get $qq) (local.get $s) (local.get $q2)))
        (local.set $qq (f32x4.relaxed_madd (local.get $qq) (local.get $s) (local.get $q1)))
        (local.set $qq (f32x4.relaxed_madd (local.get $qq) (local.get $s) (local.get $c_one)))
        (local.set $h (f32x4.mul (local.get $dyv)
          (f32x4.add (local.get $c_half) (f32x4.div (f32x4.mul (local.get $v) (local.get $pp)) (local.get $qq)))))
        (if (i32.ge_s (local.get $n) (i32.const 4))
          (then (v128.store (local.get $dst) (local.get $h)))
          (else (call $storePartial (local.get $dst) (local.get $n) (local.get $h))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dy (i32.add (local.get $dy) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $n (i32.sub (local.get $n) (i32.const 4)))
        (br $v))))

  ;; ---------------------------------------------------------------------
  ;; Optimizer and teacher updates, a parameter (or a piece of one) per call. Plain
  ;; multiplies and adds in the order of the op-by-op code in src/train
  ;; (optim.ts `adam`, teacher.ts `emaUpdate`), no fused multiply-adds: the
  ;; results are bit for bit those of that code, in one pass instead of a
  ;; dozen.
  ;; ---------------------------------------------------------------------

  ;; AdamW on n floats of one parameter: weights w and gradient g (outputs wo),
  ;; moments m and v (outputs mo, vo), the gradient first multiplied by the
  ;; parameter's factor s (clipping):
  ;;   g' = g*s ; m' = m*b1 + g'*(1-b1) ; v' = v*b2 + (g'*g')*(1-b2)
  ;;   w' = w*keep - (m' / (sqrt(v')/sb2 + eps)) * lr
  ;; k [8] (f32): b1, 1-b1, b2, 1-b2, sb2, eps, keep, lr.
  (func (export "adamw") (param $w i32) (param $g i32) (param $m i32) (param $v i32)
    (param $wo i32) (param $mo i32) (param $vo i32) (param $n i32) (param $sf f32) (param $k i32)
    (local $o i32) (local $e i32)
    (local $s v128) (local $b1 v128) (local $c1 v128) (local $b2 v128) (local $c2 v128)
    (local $sb2 v128) (local $eps v128) (local $keep v128) (local $lr v128)
    (local $gv v128) (local $mv v128) (local $vv v128) (local $gf f32) (local $mf f32) (local $vf f32)
    (local.set $s (f32x4.splat (local.get $sf)))
    (local.set $b1 (v128.load32_splat (local.get $k)))
    (local.set $c1 (v128.load32_splat offset=4 (local.get $k)))
    (local.set $b2 (v128.load32_splat offset=8 (local.get $k)))
    (local.set $c2 (v128.load32_splat offset=12 (local.get $k)))
    (local.set $sb2 (v128.load32_splat offset=16 (local.get $k)))
    (local.set $eps (v128.load32_splat offset=20 (local.get $k)))
    (local.set $keep (v128.load32_splat offset=24 (local.get $k)))
    (local.set $lr (v128.load32_splat offset=28 (local.get $k)))
    (local.set $e (i32.shl (local.get $n) (i32.const 2)))
    (block $vd
      (loop $vl
        (br_if $vd (i32.gt_s (i32.add (local.get $o) (i32.const 16)) (local.get $e)))
        (local.set $gv (f32x4.mul (v128.load (i32.add (local.get $g) (local.get $o))) (local.get $s)))
        (local.set $mv (f32x4.add (f32x4.mul (v128.load (i32.add (local.get $m) (local.get $o))) (local.get $b1))
                                  (f32x4.mul (local.get $gv) (local.get $c1))))
        (local.set $vv (f32x4.add (f32x4.mul (v128.load (i32.add (local.get $v) (local.get $o))) (local.get $b2))
                                  (f32x4.mul (f32x4.mul (local.get $gv) (local.get $gv)) (local.get $c2))))
        (v128.store (i32.add (local.get $mo) (local.get $o)) (local.get $mv))
        (v128.store (i32.add (local.get $vo) (local.get $o)) (local.get $vv))
        (v128.store (i32.add (local.get $wo) (local.get $o))
          (f32x4.sub (f32x4.mul (v128.load (i32.add (local.get $w) (local.get $o))) (local.get $keep))
                     (f32x4.mul (f32x4.div (local.get $mv)
                                           (f32x4.add (f32x4.div (f32x4.sqrt (local.get $vv)) (local.get $sb2)) (local.get $eps)))
                                (local.get $lr))))
        (local.set $o (i32.add (local.get $o) (i32.const 16)))
        (br $vl)))
    ;; the last 1-3 elements, the same arithmetic in scalars
    (block $sd
      (loop $sl
        (br_if $sd (i32.ge_s (local.get $o) (local.get $e)))
        (local.set $gf (f32.mul (f32.load (i32.add (local.get $g) (local.get $o))) (local.get $sf)))
        (local.set $mf (f32.add (f32.mul (f32.load (i32.add (local.get $m) (local.get $o))) (f32x4.extract_lane 0 (local.get $b1)))
                                (f32.mul (local.get $gf) (f32x4.extract_lane 0 (local.get $c1)))))
        (local.set $vf (f32.add (f32.mul (f32.load (i32.add (local.get $v) (local.get $o))) (f32x4.extract_lane 0 (local.get $b2)))
                                (f32.mul (f32.mul (local.get $gf) (local.get $gf)) (f32x4.extract_lane 0 (local.get $c2)))))
        (f32.store (i32.add (local.get $mo) (local.get $o)) (local.get $mf))
        (f32.store (i32.add (local.get $vo) (local.get $o)) (local.get $vf))
        (f32.store (i32.add (local.get $wo) (local.get $o))
          (f32.sub (f32.mul (f32.load (i32.add (local.get $w) (local.get $o))) (f32x4.extract_lane 0 (local.get $keep)))
                   (f32.mul (f32.div (local.get $mf)
                                     (f32.add (f32.div (f32.sqrt (local.get $vf)) (f32x4.extract_lane 0 (local.get $sb2)))
                                              (f32x4.extract_lane 0 (local.get $eps))))
                            (f32x4.extract_lane 0 (local.get $lr)))))
        (local.set $o (i32.add (local.get $o) (i32.const 4)))
        (br $sl))))

  ;; Teacher EMA: out = t*a + s*b for n floats (a = momentum, b = 1 - momentum).
  (func (export "ema") (param $t i32) (param $s i32) (param $out i32) (param $n i32) (param $a f32) (param $b f32)
    (local $av v128) (local $bv v128) (local $o i32) (local $e i32)
    (local.set $av (f32x4.splat (local.get $a)))
    (local.set $bv (f32x4.splat (local.get $b)))
    (local.set $e (i32.shl (local.get $n) (i32.const 2)))
    (block $vd
      (loop $vl
        (br_if $vd (i32.gt_s (i32.add (local.get $o) (i32.const 16)) (local.get $e)))
        (v128.store (i32.add (local.get $out) (local.get $o))
          (f32x4.add (f32x4.mul (v128.load (i32.add (local.get $t) (local.get $o))) (local.get $av))
                     (f32x4.mul (v128.load (i32.add (local.get $s) (local.get $o))) (local.get $bv))))
        (local.set $o (i32.add (local.get $o) (i32.const 16)))
        (br $vl)))
    (block $sd
      (loop $sl
        (br_if $sd (i32.ge_s (local.get $o) (local.get $e)))
        (f32.store (i32.add (local.get $out) (local.get $o))
          (f32.add (f32.mul (f32.load (i32.add (local.get $t) (local.get $o))) (local.get $a))
                   (f32.mul (f32.load (i32.add (local.get $s) (local.get $o))) (local.get $b))))
        (local.set $o (i32.add (local.get $o) (i32.const 4)))
        (br $sl))))

  ;; ---------------------------------------------------------------------
  ;; LayerNorm over rows of x [M, D] (D a multiple of 4), rows r0 <= r < r1.
  ;; Forward writes y = xhat*g + b, xhat = (x - mean) * rstd and rstd per row;
  ;; backward gives dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat*xhat)),
  ;; dxhat = dy*g (dgamma, dbeta are column sums done separately).
  ;; ---------------------------------------------------------------------
  (func $hsum (param $v v128) (result f32)
    (f32.add (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
             (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  (func (export "ln_fwd") (param $x i32) (param $g i32) (param $b i32) (param $y i32) (param $xh i32) (param $rs i32)
    (param $r0 i32) (param $r1 i32) (param $D i32) (param $eps f32)
    (local $r i32) (local $j i32) (local $rowB i32) (local $px i32) (local $py i32) (local $ph i32)
    (local $acc v128) (local $mean v128) (local $rstd v128) (local $c v128) (local $inv f32) (local $rv f32)
    (local.set $rowB (i32.shl (local.get $D) (i32.const 2)))
    (local.set $inv (f32.div (f32.const 1) (f32.convert_i32_s (local.get $D))))
    (local.set $r (local.get $r0))
    (loop $rows
      (local.set $px (i32.add (local.get $x) (i32.mul (local.get $r) (local.get $rowB))))
      (local.set $py (i32.add (local.get $y) (i32.mul (local.get $r) (local.get $rowB))))
      (local.set $ph (i32.add (local.get $xh) (i32.mul (local.get $r) (local.get $rowB))))
      (local.set $acc (v128.const i32x4 0 0 0 0))
      (local.set $j (i32.const 0))
      (loop $s1
        (local.set $acc (f32x4.add (local.get $acc) (v128.load (i32.add (local.get $px) (local.get $j)))))
        (br_if $s1 (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $rowB))))
      (local.set $mean (f32x4.splat (f32.mul (call $hsum (local.get $acc)) (local.get $inv))))
      (local.set $acc (v128.const i32x4 0 0 0 0))
      (local.set $j (i32.const 0))
      (loop $s2
        (local.set $c (f32x4.sub (v128.load (i32.add (local.get $px) (local.get $j))) (local.get $mean)))
        (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $c) (local.get $c))))
        (br_if $s2 (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $rowB))))
      (local.set $rv (f32.div (f32.const 1) (f32.sqrt (f32.add (f32.mul (call $hsum (local.get $acc)) (local.get $inv)) (local.get $eps)))))
      (f32.store (i32.add (local.get $rs) (i32.shl (local.get $r) (i32.const 2))) (local.get $rv))
      (local.set $rstd (f32x4.splat (local.get $rv)))
      (local.set $j (i32.const 0))
      (loop $s3
        (local.set $c (f32x4.mul (f32x4.sub (v128.load (i32.add (local.get $px) (local.get $j))) (local.get $mean)) (local.get $rstd)))
        (v128.store (i32.add (local.get $ph) (local.get $j)) (local.get $c))
        (v128.store (i32.add (local.get $py) (local.get $j))
          (f32x4.add (f32x4.mul (local.get $c) (v128.load (i32.add (local.get $g) (local.get $j)))) (v128.load (i32.add (local.get $b) (local.get $j)))))
        (br_if $s3 (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $rowB))))
      (br_if $rows (i32.lt_s (local.tee $r (i32.add (local.get $r) (i32.const 1))) (local.get $r1)))))

  (func (export "ln_bwd") (param $dy i32) (param $xh i32) (param $rs i32) (param $g i32) (param $dx i32)
    (param $r0 i32) (param $r1 i32) (param $D i32)
    (local $r i32) (local $j i32) (local $rowB i32) (local $pd i32) (local $ph i32) (local $po i32)
    (local $a1 v128) (local $a2 v128) (local $t v128) (local $m1 v128) (local $m2 v128) (local $rstd v128) (local $inv f32)
    (local.set $rowB (i32.shl (local.get $D) (i32.const 2)))
    (local.set $inv (f32.div (f32.const 1) (f32.convert_i32_s (local.get $D))))
    (local.set $r (local.get $r0))
    (loop $rows
      (local.set $pd (i32.add (local.get $dy) (i32.mul (local.get $r) (local.get $rowB))))
      (local.set $ph (i32.add (local.get $xh) (i32.mul (local.get $r) (local.get $rowB))))
      (local.set $po (i32.add (local.get $dx) (i32.mul (local.get $r) (local.get $rowB))))
      (local.set $a1 (v128.const i32x4 0 0 0 0))
      (local.set $a2 (v128.const i32x4 0 0 0 0))
      (local.set $j (i32.const 0))
      (loop $s1
        (local.set $t (f32x4.mul (v128.load (i32.add (local.get $pd) (local.get $j))) (v128.load (i32.add (local.get $g) (local.get $j)))))
        (local.set $a1 (f32x4.add (local.get $a1) (local.get $t)))
        (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $t) (v128.load (i32.add (local.get $ph) (local.get $j))))))
        (br_if $s1 (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $rowB))))
      (local.set $m1 (f32x4.splat (f32.mul (call $hsum (local.get $a1)) (local.get $inv))))
      (local.set $m2 (f32x4.splat (f32.mul (call $hsum (local.get $a2)) (local.get $inv))))
      (local.set $rstd (v128.load32_splat (i32.add (local.get $rs) (i32.shl (local.get $r) (i32.const 2)))))
      (local.set $j (i32.const 0))
      (loop $s2
        (local.set $t (f32x4.mul (v128.load (i32.add (local.get $pd) (local.get $j))) (v128.load (i32.add (local.get $g) (local.get $j)))))
        (v128.store (i32.add (local.get $po) (local.get $j))
          (f32x4.mul (local.get $rstd)
            (f32x4.sub (f32x4.sub (local.get $t) (local.get $m1))
                       (f32x4.mul (v128.load (i32.add (local.get $ph) (local.get $j))) (local.get $m2)))))
        (br_if $s2 (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $rowB))))
      (br_if $rows (i32.lt_s (local.tee $r (i32.add (local.get $r) (i32.const 1))) (local.get $r1)))))

  ;; ---------------------------------------------------------------------
  ;; Fused multi-head attention on 2-D token matrices
  ;;
  ;; qkv [B*N, 3*D] (q | k | v, heads of width d side by side, D = H*d), as
  ;; the qkv projection produces it; out [B*N, D] with heads merged, as the
  ;; output projection takes it; probs [B*H, N, N]. So the head split and merge
  ;; transposes disappear: each head is a strided view.
  ;;
  ;; ws: [S or P: N*Np floats][dP: N*Np floats][gemm ws], Np = roundup(N, 4).
  ;; ---------------------------------------------------------------------

  ;; Row-wise softmax of s [N][Np] in place (Np a multiple of 4). Columns
  ;; past N up to roundup(N, 4) come out as ~1e-38, those after are not
  ;; touched: readers take the first N columns only.
  ;; exp(x - max) as in `exp` above, with its constants folded for this case:
  ;; x - max <= 0, so only the lower clamp is needed (below -87 the exponent
  ;; bits would wrap), and the split of n·ln2 runs as multiply-adds.
  (func $softmaxRows (param $s i32) (param $N i32) (param $Np i32)
    (local $i i32) (local $row i32) (local $j i32) (local $nb i32) (local $rem i32) (local $mask v128)
    (local $x i32) (local $mx v128) (local $sum v128) (local $e v128) (local $t v128) (local $n v128) (local $r v128) (local $p v128)
    (local $c_lo v128) (local $c_l2e v128) (local $c_mag v128) (local $c_ln2h v128) (local $c_ln2l v128) (local $c_p0 v128) (local $c_p1 v128)
    (local $c_p2 v128) (local $c_p3 v128) (local $c_p4 v128) (local $c_p5 v128) (local $c_one v128) (local $c_bias v128) (local $ninf v128)
    (local.set $c_lo (v128.const f32x4 -87 -87 -87 -87))
    (local.set $c_l2e (v128.const f32x4 1.44269504088896341 1.44269504088896341 1.44269504088896341 1.44269504088896341))
    (local.set $c_mag (v128.const f32x4 12582912 12582912 12582912 12582912))
    (local.set $c_ln2h (v128.const f32x4 -0.693359375 -0.693359375 -0.693359375 -0.693359375))
    (local.set $c_ln2l (v128.const f32x4 2.12194440e-4 2.12194440e-4 2.12194440e-4 2.12194440e-4))
    (local.set $c_p0 (v128.const f32x4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4))
    (local.set $c_p1 (v128.const f32x4 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3))
    (local.set $c_p2 (v128.const f32x4 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3))
    (local.set $c_p3 (v128.const f32x4 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2))
    (local.set $c_p4 (v128.const f32x4 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1))
    (local.set $c_p5 (v128.const f32x4 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1))
    (local.set $c_one (v128.const f32x4 1 1 1 1))
    ;; bits(mag + n) + (127 - bits(mag)) = n + 127, the exponent field of 2^n
    (local.set $c_bias (i32x4.sub (v128.const i32x4 127 127 127 127) (local.get $c_mag)))
    (local.set $ninf (v128.const f32x4 -inf -inf -inf -inf))
    (local.set $nb (i32.shl (i32.and (i32.add (local.get $N) (i32.const 3)) (i32.const -4)) (i32.const 2)))
    (local.set $rem (i32.and (local.get $N) (i32.const 3)))
    ;; lanes of the last vector that hold a column < N
    (local.set $mask (i32x4.lt_s (v128.const i32x4 0 1 2 3) (i32x4.splat (local.get $rem))))
    (loop $rows
      (local.set $row (i32.add (local.get $s) (i32.shl (i32.mul (local.get $i) (local.get $Np)) (i32.const 2))))
      (if (local.get $rem)
        (then
          (local.set $j (i32.sub (i32.add (local.get $row) (local.get $nb)) (i32.const 16)))
          (v128.store (local.get $j) (v128.bitselect (v128.load (local.get $j)) (local.get $ninf) (local.get $mask)))))
      (local.set $mx (v128.load (local.get $row)))
      (local.set $j (i32.const 16))
      (block $md (loop $ml
        (br_if $md (i32.ge_s (local.get $j) (local.get $nb)))
        (local.set $mx (f32x4.pmax (local.get $mx) (v128.load (i32.add (local.get $row) (local.get $j)))))
        (local.set $j (i32.add (local.get $j) (i32.const 16)))
        (br $ml)))
      (local.set $mx (f32x4.pmax (local.get $mx) (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $mx) (local.get $mx))))
      (local.set $mx (f32x4.pmax (local.get $mx) (i8x16.shuffle 4 5 6 7 0 1 2 3 12 13 14 15 8 9 10 11 (local.get $mx) (local.get $mx))))
      (local.set $sum (v128.const i32x4 0 0 0 0))
      (local.set $j (i32.const 0))
      (loop $el
        (local.set $x (i32.add (local.get $row) (local.get $j)))
        (local.set $e (f32x4.pmax (f32x4.sub (v128.load (local.get $x)) (local.get $mx)) (local.get $c_lo)))
        (local.set $t (f32x4.relaxed_madd (local.get $e) (local.get $c_l2e) (local.get $c_mag)))
        (local.set $n (f32x4.sub (local.get $t) (local.get $c_mag)))
        (local.set $r (f32x4.relaxed_madd (local.get $n) (local.get $c_ln2h) (local.get $e)))
        (local.set $r (f32x4.relaxed_madd (local.get $n) (local.get $c_ln2l) (local.get $r)))
        (local.set $p (f32x4.relaxed_madd (local.get $c_p0) (local.get $r) (local.get $c_p1)))
        (local.set $p (f32x4.relaxed_madd (local.get $p) (local.get $r) (local.get $c_p2)))
        (local.set $p (f32x4.relaxed_madd (local.get $p) (local.get $r) (local.get $c_p3)))
        (local.set $p (f32x4.relaxed_madd (local.get $p) (local.get $r) (local.get $c_p4)))
        (local.set $p (f32x4.relaxed_madd (local.get $p) (local.get $r) (local.get $c_p5)))
        (local.set $p (f32x4.add (f32x4.relaxed_madd (local.get $p) (f32x4.mul (local.get $r) (local.get $r)) (local.get $r)) (local.get $c_one)))
        (local.set $e (f32x4.mul (local.get $p) (i32x4.shl (i32x4.add (local.get $t) (local.get $c_bias)) (i32.const 23))))
        (v128.store (local.get $x) (local.get $e))
        (local.set $sum (f32x4.add (local.get $sum) (local.get $e)))
        (br_if $el (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $nb))))
      (local.set $e (f32x4.splat (f32.div (f32.const 1) (call $hsum (local.get $sum)))))
      (local.set $j (i32.const 0))
      (loop $nl
        (local.set $x (i32.add (local.get $row) (local.get $j)))
        (v128.store (local.get $x) (f32x4.mul (v128.load (local.get $x)) (local.get $e)))
        (br_if $nl (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $nb))))
      (br_if $rows (i32.lt_s (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $N)))))

  ;; Copy rows between the padded [N][Np] scratch layout and a dense [N][N] one.
  (func $unpad (param $src i32) (param $dst i32) (param $N i32) (param $Np i32)
    (local $i i32)
    (loop $rows
      (call $copy (i32.add (local.get $src) (i32.shl (i32.mul (local.get $i) (local.get $Np)) (i32.const 2)))
                  (i32.add (local.get $dst) (i32.shl (i32.mul (local.get $i) (local.get $N)) (i32.const 2)))
                  (i32.shl (local.get $N) (i32.const 2)))
      (br_if $rows (i32.lt_s (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $N)))))
  (func $pad (param $src i32) (param $dst i32) (param $N i32) (param $Np i32)
    (local $i i32) (local $j i32) (local $row i32)
    (loop $rows
      (local.set $row (i32.add (local.get $dst) (i32.shl (i32.mul (local.get $i) (local.get $Np)) (i32.const 2))))
      (call $copy (i32.add (local.get $src) (i32.shl (i32.mul (local.get $i) (local.get $N)) (i32.const 2)))
                  (local.get $row) (i32.shl (local.get $N) (i32.const 2)))
      (local.set $j (local.get $N))
      (block $pd (loop $pl
        (br_if $pd (i32.ge_s (local.get $j) (local.get $Np)))
        (f32.store (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))) (f32.const 0))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $pl)))
      (br_if $rows (i32.lt_s (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $N)))))

  ;; ---------------------------------------------------------------------
  ;; Heads whose width d is a multiple of 8: no packed GEMM.
  ;;
  ;; The products of one head are small (N tokens by d): a packed GEMM spends
  ;; much of its time there packing both operands and in edge tiles. Here
  ;; every operand is read where it lies (a head is a strided view whose rows
  ;; are contiguous in d) and only an operand whose columns are tokens is
  ;; transposed once, into [d][Np8] (Np8 = roundup(N, 8), zero columns past N).
  ;; ws: fwd [S: N*Np8][K^T: d*Np8], bwd [P: N*Np8][dP: N*Np8][V^T: d*Np8] floats.
  ;; ---------------------------------------------------------------------

  ;; C tile (mr <= 4 rows, 8 columns) = A B over kc >= 1 steps, with A(m, k)
  ;; at a + m*sAm + k*sAk and B(k, 0..7) contiguous at b + k*sBk. Rows >= mr
  ;; are computed from row 0 (so nothing past the operand is read) and not stored.
  (func $mk4x8s (param $a i32) (param $sAm i32) (param $sAk i32) (param $b i32) (param $sBk i32) (param $kc i32)
                (param $cp i32) (param $ldc i32) (param $mr i32)
    (local $a1 i32) (local $a2 i32) (local $a3 i32)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
    (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
    (local $b0 v128) (local $b1 v128) (local $av v128)
    (local.set $a1 (select (i32.add (local.get $a) (local.get $sAm)) (local.get $a) (i32.gt_s (local.get $mr) (i32.const 1))))
    (local.set $a2 (select (i32.add (local.get $a) (i32.shl (local.get $sAm) (i32.const 1))) (local.get $a) (i32.gt_s (local.get $mr) (i32.const 2))))
    (local.set $a3 (select (i32.add (local.get $a) (i32.mul (local.get $sAm) (i32.const 3))) (local.get $a) (i32.gt_s (local.get $mr) (i32.const 3))))
    (loop $k
      (local.set $b0 (v128.load (local.get $b)))
      (local.set $b1 (v128.load offset=16 (local.get $b)))
      (local.set $av (v128.load32_splat (local.get $a)))
      (local.set $c00 (f32x4.relaxed_madd (local.get $av) (local.get $b0) (local.get $c00)))
      (local.set $c01 (f32x4.relaxed_madd (local.get $av) (local.get $b1) (local.get $c01)))
      (local.set $av (v128.load32_splat (local.get $a1)))
      (local.set $c10 (f32x4.relaxed_madd (local.get $av) (local.get $b0) (local.get $c10)))
      (local.set $c11 (f32x4.relaxed_madd (local.get $av) (local.get $b1) (local.get $c11)))
      (local.set $av (v128.load32_splat (local.get $a2)))
      (local.set $c20 (f32x4.relaxed_madd (local.get $av) (local.get $b0) (local.get $c20)))
      (local.set $c21 (f32x4.relaxed_madd (local.get $av) (local.get $b1) (local.get $c21)))
      (local.set $av (v128.load32_splat (local.get $a3)))
      (local.set $c30 (f32x4.relaxed_madd (local.get $av) (local.get $b0) (local.get $c30)))
      (local.set $c31 (f32x4.relaxed_madd (local.get $av) (local.get $b1) (local.get $c31)))
      (local.set $a (i32.add (local.get $a) (local.get $sAk)))
      (local.set $a1 (i32.add (local.get $a1) (local.get $sAk)))
      (local.set $a2 (i32.add (local.get $a2) (local.get $sAk)))
      (local.set $a3 (i32.add (local.get $a3) (local.get $sAk)))
      (local.set $b (i32.add (local.get $b) (local.get $sBk)))
      (br_if $k (local.tee $kc (i32.sub (local.get $kc) (i32.const 1)))))
    (v128.store (local.get $cp) (local.get $c00))
    (v128.store offset=16 (local.get $cp) (local.get $c01))
    (if (i32.gt_s (local.get $mr) (i32.const 1))
      (then
        (local.set $cp (i32.add (local.get $cp) (local.get $ldc)))
        (v128.store (local.get $cp) (local.get $c10))
        (v128.store offset=16 (local.get $cp) (local.get $c11))
        (if (i32.gt_s (local.get $mr) (i32.const 2))
          (then
            (local.set $cp (i32.add (local.get $cp) (local.get $ldc)))
            (v128.store (local.get $cp) (local.get $c20))
            (v128.store offset=16 (local.get $cp) (local.get $c21))
            (if (i32.gt_s (local.get $mr) (i32.const 3))
              (then
                (local.set $cp (i32.add (local.get $cp) (local.get $ldc)))
                (v128.store (local.get $cp) (local.get $c30))
                (v128.store offset=16 (local.get $cp) (local.get $c31)))))))))

  ;; C [M][n] (n a multiple of 8; C rows at c + m*ldc) = A B, A(m, k) at
  ;; a + m*sAm + k*sAk, B(k, 0..n-1) contiguous at b + k*sBk, K >= 1 steps.
  (func $smallmm (param $a i32) (param $sAm i32) (param $sAk i32) (param $b i32) (param $sBk i32)
                 (param $c i32) (param $ldc i32) (param $M i32) (param $n i32) (param $K i32)
    (local $i i32) (local $j i32) (local $mr i32)
    (loop $rows
      (local.set $mr (i32.sub (local.get $M) (local.get $i)))
      (if (i32.gt_s (local.get $mr) (i32.const 4)) (then (local.set $mr (i32.const 4))))
      (local.set $j (i32.const 0))
      (loop $cols
        (call $mk4x8s (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $sAm))) (local.get $sAm) (local.get $sAk)
                      (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2))) (local.get $sBk) (local.get $K)
                      (i32.add (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $ldc))) (i32.shl (local.get $j) (i32.const 2)))
                      (local.get $ldc) (local.get $mr))
        (br_if $cols (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 8))) (local.get $n))))
      (br_if $rows (i32.lt_s (local.tee $i (i32.add (local.get $i) (i32.const 4))) (local.get $M)))))

  ;; dst[kk][j] = scale * src(j)[kk] for kk < d (a multiple of 4), j < N,
  ;; src rows at src + j*sRow; 0 for N <= j < Np8. dst rows are Np8 floats.
  (func $packT (param $src i32) (param $sRow i32) (param $N i32) (param $d i32) (param $Np8 i32) (param $scale f32) (param $dst i32)
    (local $j i32) (local $kk i32) (local $ld i32) (local $p i32) (local $q i32) (local $v v128) (local $sc v128)
    (local.set $ld (i32.shl (local.get $Np8) (i32.const 2)))
    (local.set $sc (f32x4.splat (local.get $scale)))
    (loop $rows
      (local.set $p (i32.add (local.get $src) (i32.mul (local.get $j) (local.get $sRow))))
      (local.set $q (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2))))
      (local.set $kk (i32.const 0))
      (loop $cols
        (local.set $v (f32x4.mul (v128.load (i32.add (local.get $p) (i32.shl (local.get $kk) (i32.const 2)))) (local.get $sc)))
        (f32.store (local.get $q) (f32x4.extract_lane 0 (local.get $v)))
        (local.set $q (i32.add (local.get $q) (local.get $ld)))
        (f32.store (local.get $q) (f32x4.extract_lane 1 (local.get $v)))
        (local.set $q (i32.add (local.get $q) (local.get $ld)))
        (f32.store (local.get $q) (f32x4.extract_lane 2 (local.get $v)))
        (local.set $q (i32.add (local.get $q) (local.get $ld)))
        (f32.store (local.get $q) (f32x4.extract_lane 3 (local.get $v)))
        (local.set $q (i32.add (local.get $q) (local.get $ld)))
        (br_if $cols (i32.lt_s (local.tee $kk (i32.add (local.get $kk) (i32.const 4))) (local.get $d))))
      (br_if $rows (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 1))) (local.get $N))))
    (if (i32.lt_s (local.get $N) (local.get $Np8))
      (then
        (local.set $kk (i32.const 0))
        (loop $zr
          (local.set $q (i32.add (local.get $dst) (i32.mul (local.get $kk) (local.get $ld))))
          (local.set $j (local.get $N))
          (loop $zc
            (f32.store (i32.add (local.get $q) (i32.shl (local.get $j) (i32.const 2))) (f32.const 0))
            (br_if $zc (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 1))) (local.get $Np8))))
          (br_if $zr (i32.lt_s (local.tee $kk (i32.add (local.get $kk) (i32.const 1))) (local.get $d)))))))

  ;; One head forward: o = softmax(scale * q k^T) v (q, k, v, o rows strided
  ;; by row3 / rowD bytes); the probabilities go to pr ([N][N]) when pr != 0.
  (func $attnHeadFwd (param $q i32) (param $k i32) (param $v i32) (param $o i32) (param $pr i32)
    (param $N i32) (param $d i32) (param $row3 i32) (param $rowD i32) (param $scale f32) (param $ws i32)
    (local $Np8 i32) (local $ld i32) (local $kt i32)
    (local.set $Np8 (i32.and (i32.add (local.get $N) (i32.const 7)) (i32.const -8)))
    (local.set $ld (i32.shl (local.get $Np8) (i32.const 2)))
    (local.set $kt (i32.add (local.get $ws) (i32.mul (local.get $N) (local.get $ld))))
    (call $packT (local.get $k) (local.get $row3) (local.get $N) (local.get $d) (local.get $Np8) (local.get $scale) (local.get $kt))
    ;; S = Q (scale K^T)
    (call $smallmm (local.get $q) (local.get $row3) (i32.const 4) (local.get $kt) (local.get $ld)
                   (local.get $ws) (local.get $ld) (local.get $N) (local.get $Np8) (local.get $d))
    (call $softmaxRows (local.get $ws) (local.get $N) (local.get $Np8))
    (if (local.get $pr) (then (call $unpad (local.get $ws) (local.get $pr) (local.get $N) (local.get $Np8))))
    ;; O = P V
    (call $smallmm (local.get $ws) (local.get $ld) (i32.const 4) (local.get $v) (local.get $row3)
                   (local.get $o) (local.get $rowD) (local.get $N) (local.get $d) (local.get $N)))

  ;; One head backward from its probabilities pin ([N][N]) and do (rows
  ;; strided by rowD): dq, dq + rowD, dq + 2*rowD receive dQ, dK, dV (rows
  ;; strided by row3).
  (func $attnHeadBwd (param $q i32) (param $k i32) (param $v i32) (param $do i32) (param $dq i32) (param $pin i32)
    (param $N i32) (param $d i32) (param $row3 i32) (param $rowD i32) (param $scale f32) (param $ws i32)
    (local $Np8 i32) (local $ld i32) (local $dp i32) (local $vt i32) (local $i i32) (local $j i32)
    (local $pr i32) (local $dr i32) (local $acc v128) (local $sv v128) (local $sc v128) (local $pv v128)
    (local.set $Np8 (i32.and (i32.add (local.get $N) (i32.const 7)) (i32.const -8)))
    (local.set $ld (i32.shl (local.get $Np8) (i32.const 2)))
    (local.set $dp (i32.add (local.get $ws) (i32.mul (local.get $N) (local.get $ld))))
    (local.set $vt (i32.add (local.get $dp) (i32.mul (local.get $N) (local.get $ld))))
    (local.set $sc (f32x4.splat (local.get $scale)))
    (call $pad (local.get $pin) (local.get $ws) (local.get $N) (local.get $Np8))
    ;; dV = P^T dO: A(m = j, k = i) = P[i][j]
    (call $smallmm (local.get $ws) (i32.const 4) (local.get $ld) (local.get $do) (local.get $rowD)
                   (i32.add (local.get $dq) (i32.shl (local.get $rowD) (i32.const 1))) (local.get $row3) (local.get $N) (local.get $d) (local.get $N))
    ;; dP = dO V^T (columns past N come out 0: V^T is zero there)
    (call $packT (local.get $v) (local.get $row3) (local.get $N) (local.get $d) (local.get $Np8) (f32.const 1) (local.get $vt))
    (call $smallmm (local.get $do) (local.get $rowD) (i32.const 4) (local.get $vt) (local.get $ld)
                   (local.get $dp) (local.get $ld) (local.get $N) (local.get $Np8) (local.get $d))
    ;; dS = scale * P o (dP - rowsum(dP o P)), in place of dP
    (loop $rows
      (local.set $pr (i32.add (local.get $ws) (i32.mul (local.get $i) (local.get $ld))))
      (local.set $dr (i32.add (local.get $dp) (i32.mul (local.get $i) (local.get $ld))))
      (local.set $acc (v128.const i32x4 0 0 0 0))
      (local.set $j (i32.const 0))
      (loop $dot
        (local.set $acc (f32x4.add (local.get $acc)
          (f32x4.mul (v128.load (i32.add (local.get $pr) (local.get $j))) (v128.load (i32.add (local.get $dr) (local.get $j))))))
        (br_if $dot (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $ld))))
      (local.set $sv (f32x4.splat (call $hsum (local.get $acc))))
      (local.set $j (i32.const 0))
      (loop $ds
        (local.set $pv (v128.load (i32.add (local.get $pr) (local.get $j))))
        (v128.store (i32.add (local.get $dr) (local.get $j))
          (f32x4.mul (f32x4.mul (local.get $pv) (local.get $sc))
                     (f32x4.sub (v128.load (i32.add (local.get $dr) (local.get $j))) (local.get $sv))))
        (br_if $ds (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $ld))))
      (br_if $rows (i32.lt_s (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $N))))
    ;; dQ = dS K
    (call $smallmm (local.get $dp) (local.get $ld) (i32.const 4) (local.get $k) (local.get $row3)
                   (local.get $dq) (local.get $row3) (local.get $N) (local.get $d) (local.get $N))
    ;; dK = dS^T Q: A(m = j, k = i) = dS[i][j]
    (call $smallmm (local.get $dp) (i32.const 4) (local.get $ld) (local.get $q) (local.get $row3)
                   (i32.add (local.get $dq) (local.get $rowD)) (local.get $row3) (local.get $N) (local.get $d) (local.get $N)))

  ;; Forward for images b0 <= b < b1: out = softmax(q k^T * scale) v per head;
  ;; probs written when probs != 0.
  (func (export "attn_fwd") (param $qkv i32) (param $out i32) (param $probs i32)
    (param $b0 i32) (param $b1 i32) (param $N i32) (param $H i32) (param $d i32) (param $scale f32) (param $ws i32)
    (local $b i32) (local $h i32) (local $D i32) (local $row3 i32) (local $rowD i32) (local $Np i32)
    (local $q i32) (local $k i32) (local $v i32) (local $o i32) (local $s i32) (local $gws i32)
    (local.set $D (i32.mul (local.get $H) (local.get $d)))
    (local.set $row3 (i32.mul (local.get $D) (i32.const 12)))
    (local.set $rowD (i32.shl (local.get $D) (i32.const 2)))
    (local.set $Np (i32.and (i32.add (local.get $N) (i32.const 3)) (i32.const -4)))
    (local.set $s (local.get $ws))
    (local.set $gws (i32.add (local.get $ws) (i32.shl (i32.mul (local.get $N) (local.get $Np)) (i32.const 3))))
    (local.set $b (local.get $b0))
    (loop $images
      (local.set $h (i32.const 0))
      (loop $heads
        (local.set $q (i32.add (local.get $qkv) (i32.add (i32.mul (i32.mul (local.get $b) (local.get $N)) (local.get $row3))
                                                       (i32.shl (i32.mul (local.get $h) (local.get $d)) (i32.const 2)))))
        (local.set $k (i32.add (local.get $q) (local.get $rowD)))
        (local.set $v (i32.add (local.get $k) (local.get $rowD)))
        (local.set $o (i32.add (local.get $out) (i32.add (i32.mul (i32.mul (local.get $b) (local.get $N)) (local.get $rowD))
                                                         (i32.shl (i32.mul (local.get $h) (local.get $d)) (i32.const 2)))))
        (if (i32.eqz (i32.and (local.get $d) (i32.const 7)))
          (then
            (call $attnHeadFwd (local.get $q) (local.get $k) (local.get $v) (local.get $o)
              (select (i32.add (local.get $probs) (i32.shl (i32.mul (i32.mul (i32.add (i32.mul (local.get $b) (local.get $H)) (local.get $h)) (local.get $N)) (local.get $N)) (i32.const 2)))
                      (i32.const 0) (local.get $probs))
              (local.get $N) (local.get $d) (local.get $row3) (local.get $rowD) (local.get $scale) (local.get $ws)))
          (else
        ;; S = scale * Q K^T : A(m,k)=Q[m][k], B(k,n)=K[n][k]
        (call $gemm (local.get $q) (local.get $row3) (i32.const 4)
                    (local.get $k) (i32.const 4) (local.get $row3)
                    (local.get $s) (i32.shl (local.get $Np) (i32.const 2))
                    (local.get $N) (local.get $N) (local.get $d)
                    (local.get $scale) (i32.const 0) (local.get $gws))
        (call $softmaxRows (local.get $s) (local.get $N) (local.get $Np))
        (if (local.get $probs)
          (then
            (call $unpad (local.get $s)
              (i32.add (local.get $probs) (i32.shl (i32.mul (i32.mul (i32.add (i32.mul (local.get $b) (local.get $H)) (local.get $h)) (local.get $N)) (local.get $N)) (i32.const 2)))
              (local.get $N) (local.get $Np))))
        ;; O = P V : A = P (padded rows), B(k,n) = V[k][n]
        (call $gemm (local.get $s) (i32.shl (local.get $Np) (i32.const 2)) (i32.const 4)
                    (local.get $v) (local.get $row3) (i32.const 4)
                    (local.get $o) (local.get $rowD)
                    (local.get $N) (local.get $d) (local.get $N)
                    (f32.const 1) (i32.const 0) (local.get $gws))))
        (br_if $heads (i32.lt_s (local.tee $h (i32.add (local.get $h) (i32.const 1))) (local.get $H))))
      (br_if $images (i32.lt_s (local.tee $b (i32.add (local.get $b) (i32.const 1))) (local.get $b1)))))

  ;; Backward for images b0 <= b < b1, given probs and dout [B*N, D]; writes
  ;; dqkv [B*N, 3D]:
  ;;   dV = P^T dO ; dP = dO V^T ; dS = scale * P o (dP - rowsum(dP o P)) ;
  ;;   dQ = dS K ; dK = dS^T Q.
  (func (export "attn_bwd") (param $qkv i32) (param $probs i32) (param $dout i32) (param $dqkv i32)
    (param $b0 i32) (param $b1 i32) (param $N i32) (param $H i32) (param $d i32) (param $scale f32) (param $ws i32)
    (local $b i32) (local $h i32) (local $D i32) (local $row3 i32) (local $rowD i32) (local $Np i32) (local $NpB i32)
    (local $q i32) (local $k i32) (local $v i32) (local $do i32) (local $dq i32) (local $p i32) (local $dp i32) (local $gws i32)
    (local $i i32) (local $j i32) (local $pr i32) (local $dr i32) (local $acc v128) (local $sv v128) (local $sc v128) (local $pv v128)
    (local.set $D (i32.mul (local.get $H) (local.get $d)))
    (local.set $row3 (i32.mul (local.get $D) (i32.const 12)))
    (local.set $rowD (i32.shl (local.get $D) (i32.const 2)))
    (local.set $Np (i32.and (i32.add (local.get $N) (i32.const 3)) (i32.const -4)))
    (local.set $NpB (i32.shl (local.get $Np) (i32.const 2)))
    (local.set $p (local.get $ws))
    (local.set $dp (i32.add (local.get $ws) (i32.shl (i32.mul (local.get $N) (local.get $Np)) (i32.const 2))))
    (local.set $gws (i32.add (local.get $dp) (i32.shl (i32.mul (local.get $N) (local.get $Np)) (i32.const 2))))
    (local.set $sc (f32x4.splat (local.get $scale)))
    (local.set $b (local.get $b0))
    (loop $images
      (local.set $h (i32.const 0))
      (loop $heads
        (local.set $q (i32.add (local.get $qkv) (i32.add (i32.mul (i32.mul (local.get $b) (local.get $N)) (local.get $row3))
                                                       (i32.shl (i32.mul (local.get $h) (local.get $d)) (i32.const 2)))))
        (local.set $k (i32.add (local.get $q) (local.get $rowD)))
        (local.set $v (i32.add (local.get $k) (local.get $rowD)))
        (local.set $dq (i32.add (local.get $dqkv) (i32.sub (local.get $q) (local.get $qkv))))
        (local.set $do (i32.add (local.get $dout) (i32.add (i32.mul (i32.mul (local.get $b) (local.get $N)) (local.get $rowD))
                                                         (i32.shl (i32.mul (local.get $h) (local.get $d)) (i32.const 2)))))
        (if (i32.eqz (i32.and (local.get $d) (i32.const 7)))
          (then
            (call $attnHeadBwd (local.get $q) (local.get $k) (local.get $v) (local.get $do) (local.get $dq)
              (i32.add (local.get $probs) (i32.shl (i32.mul (i32.mul (i32.add (i32.mul (local.get $b) (local.get $H)) (local.get $h)) (local.get $N)) (local.get $N)) (i32.const 2)))
              (local.get $N) (local.get $d) (local.get $row3) (local.get $rowD) (local.get $scale) (local.get $ws)))
          (else
        (call $pad (i32.add (local.get $probs) (i32.shl (i32.mul (i32.mul (i32.add (i32.mul (local.get $b) (local.get $H)) (local.get $h)) (local.get $N)) (local.get $N)) (i32.const 2)))
                   (local.get $p) (local.get $N) (local.get $Np))
        ;; dV = P^T dO : A(m,k) = P[k][m], B(k,n) = dO[k][n]
        (call $gemm (local.get $p) (i32.const 4) (local.get $NpB)
                    (local.get $do) (local.get $rowD) (i32.const 4)
                    (i32.add (local.get $dq) (i32.shl (local.get $rowD) (i32.const 1))) (local.get $row3)
                    (local.get $N) (local.get $d) (local.get $N)
                    (f32.const 1) (i32.const 0) (local.get $gws))
        ;; dP = dO V^T : A(m,k) = dO[m][k], B(k,n) = V[n][k]
        (call $gemm (local.get $do) (local.get $rowD) (i32.const 4)
                    (local.get $v) (i32.const 4) (local.get $row3)
                    (local.get $dp) (local.get $NpB)
                    (local.get $N) (local.get $N) (local.get $d)
                    (f32.const 1) (i32.const 0) (local.get $gws))
        ;; dS = scale * P o (dP - rowsum(dP o P)), in place of dP (padding: P = 0 there, dP junk -> 0)
        (local.set $i (i32.const 0))
        (loop $rows
          (local.set $pr (i32.add (local.get $p) (i32.mul (local.get $i) (local.get $NpB))))
          (local.set $dr (i32.add (local.get $dp) (i32.mul (local.get $i) (local.get $NpB))))
          ;; zero dP padding so 0 * junk cannot make NaN
          (local.set $j (local.get $N))
          (block $pd (loop $pl
            (br_if $pd (i32.ge_s (local.get $j) (local.get $Np)))
            (f32.store (i32.add (local.get $dr) (i32.shl (local.get $j) (i32.const 2))) (f32.const 0))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $pl)))
          (local.set $acc (v128.const i32x4 0 0 0 0))
          (local.set $j (i32.const 0))
          (loop $dot
            (local.set $acc (f32x4.add (local.get $acc)
              (f32x4.mul (v128.load (i32.add (local.get $pr) (local.get $j))) (v128.load (i32.add (local.get $dr) (local.get $j))))))
            (br_if $dot (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $NpB))))
          (local.set $sv (f32x4.splat (f32.add (f32.add (f32x4.extract_lane 0 (local.get $acc)) (f32x4.extract_lane 1 (local.get $acc)))
                                               (f32.add (f32x4.extract_lane 2 (local.get $acc)) (f32x4.extract_lane 3 (local.get $acc))))))
          (local.set $j (i32.const 0))
          (loop $ds
            (local.set $pv (v128.load (i32.add (local.get $pr) (local.get $j))))
            (v128.store (i32.add (local.get $dr) (local.get $j))
              (f32x4.mul (f32x4.mul (local.get $pv) (local.get $sc))
                         (f32x4.sub (v128.load (i32.add (local.get $dr) (local.get $j))) (local.get $sv))))
            (br_if $ds (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $NpB))))
          (br_if $rows (i32.lt_s (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $N))))
        ;; dQ = dS K : A = dS rows, B(k,n) = K[k][n]
        (call $gemm (local.get $dp) (local.get $NpB) (i32.const 4)
                    (local.get $k) (local.get $row3) (i32.const 4)
                    (local.get $dq) (local.get $row3)
                    (local.get $N) (local.get $d) (local.get $N)
                    (f32.const 1) (i32.const 0) (local.get $gws))
        ;; dK = dS^T Q : A(m,k) = dS[k][m], B(k,n) = Q[k][n]
        (call $gemm (local.get $dp) (i32.const 4) (local.get $NpB)
                    (local.get $q) (local.get $row3) (i32.const 4)
                    (i32.add (local.get $dq) (local.get $rowD)) (local.get $row3)
                    (local.get $N) (local.get $d) (local.get $N)
                    (f32.const 1) (i32.const 0) (local.get $gws))))
        (br_if $heads (i32.lt_s (local.tee $h (i32.add (local.get $h) (i32.const 1))) (local.get $H))))
      (br_if $images (i32.lt_s (local.tee $b (i32.add (local.get $b) (i32.const 1))) (local.get $b1)))))
)
