;; The prefixing loop of output/prefixed-bytes.ts, in WebAssembly: it copies a block of lines with a
;; prefix before each, 16 bytes at a time (SIMD): each 16 are stored as they are loaded, and the first
;; \n among them ends the line. Source of the bytes in prefix-wasm.ts, which scripts/wasm.mjs
;; regenerates (wat2wasm, Debian's wabt package).
(module
  (memory (export "memory") 1)

  ;; Copies src[0, len) to dst with pre[0, plen) before every line, and returns where the copy ends.
  ;; A line ends at a \n; the block's last byte ends the last line whatever it is, and is written as \n
  ;; (callers pass blocks that end in \n).
  ;; Room the caller leaves (prefixed-bytes.ts): the copy takes at most len * (plen + 1) bytes from
  ;; dst, and src comes at least that and 16 bytes after dst: the 16-byte stores run up to 15 bytes past
  ;; what they copy, and never reach a byte of src not yet read. The loads, too, run up to 15 bytes past
  ;; the end of src and of pre, which must be inside the memory.
  (func (export "prefixLines") (param $src i32) (param $len i32) (param $dst i32) (param $pre i32) (param $plen i32) (result i32)
    (local $last i32) (local $p i32) (local $left i32) (local $mask i32) (local $n i32)
    (local $v v128) (local $lf v128) (local $prefix v128)
    (if (i32.eqz (local.get $len)) (then (return (local.get $dst))))
    (local.set $last (i32.add (local.get $src) (i32.sub (local.get $len) (i32.const 1))))
    (local.set $lf (i8x16.splat (i32.const 10)))
    (local.set $prefix (v128.load (local.get $pre)))
    (local.set $p (local.get $src))
    (loop $line
      (if (i32.le_u (local.get $plen) (i32.const 16))
        (then (v128.store (local.get $dst) (local.get $prefix)))
        (else (memory.copy (local.get $dst) (local.get $pre) (local.get $plen))))
      (local.set $dst (i32.add (local.get $dst) (local.get $plen)))
      (block $ended
        (loop $copy
          (local.set $v (v128.load (local.get $p)))
          (v128.store (local.get $dst) (local.get $v))
          (local.set $mask (i8x16.bitmask (i8x16.eq (local.get $v) (local.get $lf))))
          ;; $left: how many of the block's bytes follow $p. Fewer than 16: the 16 run past the block,
          ;; so only its own count, and its last byte ends the line if no \n does before it.
          (local.set $left (i32.sub (local.get $last) (local.get $p)))
          (if (i32.lt_u (local.get $left) (i32.const 16))
            (then
              (local.set $mask (i32.or
                (i32.and (local.get $mask) (i32.sub (i32.shl (i32.const 1) (local.get $left)) (i32.const 1)))
                (i32.shl (i32.const 1) (local.get $left))))))
          (if (local.get $mask)
            (then
              (local.set $n (i32.ctz (local.get $mask)))
              (i32.store8 (i32.add (local.get $dst) (local.get $n)) (i32.const 10))
              (local.set $dst (i32.add (local.get $dst) (i32.add (local.get $n) (i32.const 1))))
              (local.set $p (i32.add (local.get $p) (i32.add (local.get $n) (i32.const 1))))
              (br $ended)))
          (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
          (local.set $p (i32.add (local.get $p) (i32.const 16)))
          (br $copy)))
      (br_if $line (i32.le_u (local.get $p) (local.get $last))))
    (local.get $dst))
)
