;; The prefixing loop of output/prefixed-bytes.ts, in WebAssembly: it copies a block of whole lines
;; with a prefix before each line, finding the line ends 16 bytes at a time (SIMD). Source of the bytes
;; in prefix-wasm.ts, which scripts/wasm.mjs regenerates (wat2wasm, Debian's wabt package).
(module
  (memory (export "memory") 1)

  ;; Copies src[0, len) to dst with pre[0, plen) before every line, and returns where the copy ends.
  ;; A line ends at a \n; the block's last byte ends the last line whatever it is, and is written as \n
  ;; (callers pass blocks that end in \n). The caller leaves room: len + lines * plen bytes at dst,
  ;; which never overlaps src or pre.
  (func (export "prefixLines") (param $src i32) (param $len i32) (param $dst i32) (param $pre i32) (param $plen i32) (result i32)
    (local $last i32) (local $start i32) (local $p i32) (local $mask i32) (local $n i32) (local $lf v128)
    (if (i32.eqz (local.get $len)) (then (return (local.get $dst))))
    (local.set $last (i32.add (local.get $src) (i32.sub (local.get $len) (i32.const 1))))
    (local.set $lf (i8x16.splat (i32.const 10)))
    (local.set $start (local.get $src))
    (loop $line
      ;; $p: the end of the line that starts at $start, the first \n from there, or $last.
      (local.set $p (local.get $start))
      (block $found
        (loop $wide
          (br_if $found (i32.gt_u (i32.add (local.get $p) (i32.const 16)) (local.get $last)))
          (local.set $mask (i8x16.bitmask (i8x16.eq (v128.load (local.get $p)) (local.get $lf))))
          (if (local.get $mask)
            (then
              (local.set $p (i32.add (local.get $p) (i32.ctz (local.get $mask))))
              (br $found)))
          (local.set $p (i32.add (local.get $p) (i32.const 16)))
          (br $wide)))
      ;; Fewer than 16 bytes before $last (or a \n found, which the byte check below stops at at once).
      (block $byte
        (loop $narrow
          (br_if $byte (i32.ge_u (local.get $p) (local.get $last)))
          (br_if $byte (i32.eq (i32.load8_u (local.get $p)) (i32.const 10)))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (br $narrow)))
      (memory.copy (local.get $dst) (local.get $pre) (local.get $plen))
      (local.set $dst (i32.add (local.get $dst) (local.get $plen)))
      (local.set $n (i32.sub (local.get $p) (local.get $start)))
      (memory.copy (local.get $dst) (local.get $start) (local.get $n))
      (local.set $dst (i32.add (local.get $dst) (local.get $n)))
      (i32.store8 (local.get $dst) (i32.const 10))
      (local.set $dst (i32.add (local.get $dst) (i32.const 1)))
      (local.set $start (i32.add (local.get $p) (i32.const 1)))
      (br_if $line (i32.le_u (local.get $start) (local.get $last))))
    (local.get $dst))
)
