import { describe, it, expect } from 'vitest'
import {
  compressHosts,
  expandHostList,
  expandHostRange,
  expandRangeItems,
  MAX_HOSTS,
  splitHostList,
} from '../../src/hosts/hostrange.js'
import { refusal } from './refusal.js'

describe('expandHostRange', () => {
  it.each<[string, string[]]>([
    ['gpu01', ['gpu01']],
    ['gpu[1-3]', ['gpu1', 'gpu2', 'gpu3']],
    ['gpu[01-03]', ['gpu01', 'gpu02', 'gpu03']],
    ['gpu[08-11]', ['gpu08', 'gpu09', 'gpu10', 'gpu11']],
    ['gpu[8-11]', ['gpu8', 'gpu9', 'gpu10', 'gpu11']],
    ['gpu[098-101]', ['gpu098', 'gpu099', 'gpu100', 'gpu101']],
    ['gpu[1-3,7]', ['gpu1', 'gpu2', 'gpu3', 'gpu7']],
    ['gpu[7,1-2]', ['gpu7', 'gpu1', 'gpu2']],
    ['gpu[5]', ['gpu5']],
    ['gpu[007]', ['gpu007']],
    ['gpu[0-1]', ['gpu0', 'gpu1']],
    ['gpu[00-01]', ['gpu00', 'gpu01']],
    ['gpu[1-1]', ['gpu1']],
    ['rack[1-2]-node[01-02]', ['rack1-node01', 'rack1-node02', 'rack2-node01', 'rack2-node02']],
    ['n[1-2].ib[0-1]', ['n1.ib0', 'n1.ib1', 'n2.ib0', 'n2.ib1']],
    ['[1-2]x', ['1x', '2x']],
    ['alice@gpu[1-2]:2222', ['alice@gpu1:2222', 'alice@gpu2:2222']],
    ['10.0.0.[1-3]', ['10.0.0.1', '10.0.0.2', '10.0.0.3']],
    ['[fe80::1]:22', ['[fe80::1]:22']],
    ['bob@[fe80::1]:22', ['bob@[fe80::1]:22']],
    ['fe80::[1-2]', ['fe80::1', 'fe80::2']],
    ['node[99999999999999999998-99999999999999999999]', ['node99999999999999999998', 'node99999999999999999999']],
  ])('%s', (pattern, names) => {
    expect(expandHostRange(pattern)).toEqual(names)
  })

  it.each<[string, RegExp]>([
    ['gpu[5-1]', /invalid host range "gpu\[5-1\]": "5-1" runs backwards/],
    ['gpu[01-', /invalid host range "gpu\[01-": "\[" without "\]"/],
    ['gpu[01-03', /"\[" without "\]"/],
    ['gpu01-03]', /"\]" without "\["/],
    ['gpu[]', /empty brackets/],
    ['gpu[a-b]', /"a-b" is not N or N-M/],
    ['gpu[1-]', /"1-" is not N or N-M/],
    ['gpu[-1]', /"-1" is not N or N-M/],
    ['gpu[1,,2]', /"" is not N or N-M/],
    ['gpu[1-2-3]', /"1-2-3" is not N or N-M/],
    ['gpu[1 - 2]', /"1 - 2" is not N or N-M/],
    ['gpu[[1-2]]', /nested "\["/],
    ['gpu[1-99999999]', /more than 65536/],
    ['a[1-300]b[1-300]', /more than 65536 hosts/],
  ])('%s is refused', async (pattern, message) => {
    expect((await refusal(() => expandHostRange(pattern), 'HOSTFILE')).message).toMatch(message)
  })

  it('a range as large as allowed is expanded', () => {
    expect(expandHostRange(`n[1-${MAX_HOSTS}]`)).toHaveLength(MAX_HOSTS)
  })
})

describe('expandRangeItems', () => {
  it.each<[string, string[]]>([
    ['0', ['0']],
    ['0-3', ['0', '1', '2', '3']],
    ['0,2', ['0', '2']],
    ['2,0', ['2', '0']],
    ['0-1,6', ['0', '1', '6']],
  ])('%s', (inside, items) => {
    expect(expandRangeItems(inside)).toEqual(items)
  })

  it('honours the limit', () => {
    expect(() => expandRangeItems('0-4096', 4096)).toThrow(/more than 4096/)
    expect(expandRangeItems('0-4095', 4096)).toHaveLength(4096)
  })
})

describe('splitHostList / expandHostList', () => {
  it.each<[string, string[]]>([
    ['a', ['a']],
    ['a,b', ['a', 'b']],
    [' a , b ', ['a', 'b']],
    ['gpu[1-3,7],b', ['gpu[1-3,7]', 'b']],
    ['node[001-004,010]', ['node[001-004,010]']],
    ['[fe80::1]:22,[fe80::2]:22', ['[fe80::1]:22', '[fe80::2]:22']],
    ['a,,b', ['a', '', 'b']],
    ['a,', ['a', '']],
  ])('split %j', (text, items) => {
    expect(splitHostList(text)).toEqual(items)
  })

  it.each<[string, string[]]>([
    ['node[001-004,010]', ['node001', 'node002', 'node003', 'node004', 'node010']],
    ['gpu[1-2],login1,rack[1-2]-n[1-2]', ['gpu1', 'gpu2', 'login1', 'rack1-n1', 'rack1-n2', 'rack2-n1', 'rack2-n2']],
  ])('expand %j', (text, names) => {
    expect(expandHostList(text)).toEqual(names)
  })
})

describe('compressHosts', () => {
  it.each<[string[], string]>([
    [[], ''],
    [['a'], 'a'],
    [['gpu1'], 'gpu1'],
    [['gpu1', 'gpu2', 'gpu3'], 'gpu[1-3]'],
    [['gpu01', 'gpu02', 'gpu03', 'gpu07'], 'gpu[01-03,07]'],
    [['gpu08', 'gpu09', 'gpu10'], 'gpu[08-10]'],
    [['gpu9', 'gpu10'], 'gpu[9-10]'],
    [['gpu9', 'gpu010'], 'gpu[9,010]'],
    [['gpu3', 'gpu1', 'gpu2'], 'gpu[3,1-2]'],
    [['gpu1', 'gpu1'], 'gpu[1,1]'],
    [['gpu1', 'login1', 'gpu2'], 'gpu1,login1,gpu2'],
    [['rack1-node01', 'rack1-node02', 'rack2-node01'], 'rack1-node[01-02],rack2-node01'],
    [['n1.ib', 'n2.ib'], 'n[1-2].ib'],
    [['10.0.0.1', '10.0.0.2'], '10.0.0.[1-2]'],
    [['alpha', 'beta'], 'alpha,beta'],
  ])('%j → %s', (names, text) => {
    expect(compressHosts(names)).toBe(text)
  })
})

/** A small seeded PRNG (mulberry32): the property tests are random but repeatable. */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n)
  }
}

const pick = <T>(rand: (n: number) => number, items: readonly T[]): T => items[rand(items.length)] as T
const LETTERS = ['a', 'b', 'gpu', 'node', 'n', 'rack', '-', '.', 'x-']

/** A random range pattern: literal parts and bracket ranges, padded or not, several items each. */
function randomPattern(rand: (n: number) => number): string {
  let pattern = pick(rand, ['gpu', 'node', 'n', 'a', 'rack'])
  const groups = 1 + rand(2)
  for (let g = 0; g < groups; g++) {
    const items: string[] = []
    for (let i = 0, k = 1 + rand(3); i < k; i++) {
      const start = rand(120)
      const width = rand(3) === 0 ? 3 : 0
      const from = String(start).padStart(width, '0')
      items.push(rand(2) === 0 ? from : `${from}-${start + rand(12)}`)
    }
    pattern += `[${items.join(',')}]${g + 1 < groups ? pick(rand, ['-node', '.ib', '-', 'x']) : pick(rand, ['', '', '.lan', '-ib'])}`
  }
  return pattern
}

/** A random list of names: runs of numbered hosts (padded or not), repeats, and names without digits. */
function randomNames(rand: (n: number) => number): string[] {
  const names: string[] = []
  for (let i = 0, k = rand(30); i < k; i++) {
    const base = pick(rand, LETTERS) + (rand(4) === 0 ? `${rand(3)}-` : '')
    const n = rand(1000)
    const name =
      rand(5) === 0
        ? pick(rand, ['login', 'head', 'db'])
        : `${base}${String(n).padStart(rand(4), '0')}${pick(rand, ['', '', '.ib'])}`
    for (let r = 0, run = 1 + rand(5); r < run; r++)
      names.push(name.replace(/[0-9]+(?=[^0-9]*$)/, (d) => String(Number(d) + r).padStart(d.length, '0')))
  }
  return names
}

describe('properties (seeded, 500 cases each)', () => {
  const seeds = Array.from({ length: 500 }, (_, i) => i + 1)

  it('expand(compress(names)) is names, order and repeats included', () => {
    for (const seed of seeds) {
      const names = randomNames(prng(seed))
      expect(names.length === 0 ? [] : expandHostList(compressHosts(names)), `seed ${seed}`).toEqual(names)
    }
  })

  it('compressing the expansion of a pattern gives back the same hosts, in no more items than the pattern had hosts', () => {
    for (const seed of seeds) {
      const pattern = randomPattern(prng(seed))
      const names = expandHostRange(pattern)
      const compressed = compressHosts(names)
      expect(expandHostList(compressed), `seed ${seed}: ${pattern} → ${compressed}`).toEqual(names)
      expect(splitHostList(compressed).length).toBeLessThanOrEqual(names.length)
    }
  })

  it('compression is stable: compress(expand(compress(x))) = compress(x)', () => {
    for (const seed of seeds) {
      const names = randomNames(prng(seed))
      if (names.length === 0) continue
      const once = compressHosts(names)
      expect(compressHosts(expandHostList(once)), `seed ${seed}`).toBe(once)
    }
  })

  it('a single-bracket pattern with ascending, non-overlapping items compresses back to itself', () => {
    for (const seed of seeds) {
      const rand = prng(seed)
      const items: string[] = []
      let next = rand(50)
      for (let i = 0, k = 1 + rand(4); i < k; i++) {
        const end = next + rand(5)
        items.push(end === next ? String(next) : `${next}-${end}`)
        next = end + 2 + rand(10)
      }
      const pattern = `node[${items.join(',')}]`
      const expected = items.length === 1 && !items[0]?.includes('-') ? `node${items[0]}` : pattern
      expect(compressHosts(expandHostRange(pattern)), `seed ${seed}`).toBe(expected)
    }
  })
})

describe('hostrange messages quote only the start of a huge pattern', () => {
  it('a 100 000-character range item', async () => {
    const err = await refusal(() => expandHostRange(`h[${'1,'.repeat(50_000)}x]`), 'HOSTFILE')
    expect(err.message.length).toBeLessThan(300)
    expect(err.message).toMatch(/^invalid host range "h\[1,1,.*"… \(100004 characters\): "x" is not N or N-M$/)
  })
})
