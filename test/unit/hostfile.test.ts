import { describe, it, expect } from 'vitest'
import { FanoutError } from '../../src/errors.js'
import {
  hostNameProblem,
  isHostOrAddress,
  parseHostfile,
  parseHostList,
  parsePort,
  type HostEntry,
} from '../../src/hosts/hostfile.js'

const F = 'hosts.txt'

/** Parses and returns the thrown FanoutError (fails the test when nothing is thrown). */
function parseError(text: string): FanoutError {
  try {
    parseHostfile(text, F)
  } catch (e) {
    expect(e).toBeInstanceOf(FanoutError)
    return e as FanoutError
  }
  throw new Error(`expected ${JSON.stringify(text)} to be refused`)
}

describe('parseHostfile: accepted forms', () => {
  it.each<[string, Omit<HostEntry, 'where'>]>([
    ['node1', { host: 'node1' }],
    ['node1 slots=4', { host: 'node1', slots: 4 }],
    ['node1   slots=4096', { host: 'node1', slots: 4096 }],
    ['alice@node1', { host: 'node1', user: 'alice' }],
    ['node1:2222', { host: 'node1', port: 2222 }],
    ['alice@node1:2222', { host: 'node1', user: 'alice', port: 2222 }],
    ['alice@node1:2222 slots=2', { host: 'node1', user: 'alice', port: 2222, slots: 2 }],
    ['node-1.example.com', { host: 'node-1.example.com' }],
    ['node-1.example.com.', { host: 'node-1.example.com.' }],
    ['gpu_box', { host: 'gpu_box' }],
    ['10.0.0.11', { host: '10.0.0.11' }],
    ['10.0.0.11:22', { host: '10.0.0.11', port: 22 }],
    ['[fe80::1]:22', { host: 'fe80::1', port: 22 }],
    ['[fe80::1]', { host: 'fe80::1' }],
    ['bob@[fe80::1]:65535', { host: 'fe80::1', user: 'bob', port: 65535 }],
    ['[fe80::1%eth0]:22', { host: 'fe80::1%eth0', port: 22 }],
    ['fe80::1', { host: 'fe80::1' }],
    ['::1', { host: '::1' }],
    ['2001:db8::ff00:42:8329', { host: '2001:db8::ff00:42:8329' }],
    ['::ffff:10.0.0.1', { host: '::ffff:10.0.0.1' }],
    ['node1 # trailing comment', { host: 'node1' }],
    ['node1#comment-without-space', { host: 'node1' }],
    ['  \tnode1\t slots=3  ', { host: 'node1', slots: 3 }],
    ['a.b@node1', { host: 'node1', user: 'a.b' }],
    ['_svc-1@node1', { host: 'node1', user: '_svc-1' }],
    ['node1:1', { host: 'node1', port: 1 }],
  ])('%j', (line, expected) => {
    const { hosts, warnings } = parseHostfile(line, F)
    expect(hosts).toEqual([{ ...expected, where: `${F}:1` }])
    expect(warnings).toEqual([])
  })

  it('ranks follow line order, skipping comments and blank lines; where names the real line', () => {
    const text = [
      '# cluster',
      '',
      'n0 slots=2',
      '   ',
      'root@n1:2200',
      '  # indented comment',
      '[::1]:2222',
      'n3',
    ].join('\n')
    const { hosts } = parseHostfile(text, F)
    expect(hosts).toEqual([
      { host: 'n0', slots: 2, where: `${F}:3` },
      { host: 'n1', user: 'root', port: 2200, where: `${F}:5` },
      { host: '::1', port: 2222, where: `${F}:7` },
      { host: 'n3', where: `${F}:8` },
    ])
  })

  it.each([
    ['LF', '\n'],
    ['CRLF', '\r\n'],
  ])('line endings: %s', (_name, eol) => {
    const text = ['n0 slots=1', '# c', 'u@n1:22', ''].join(eol)
    expect(parseHostfile(text, F).hosts).toEqual([
      { host: 'n0', slots: 1, where: `${F}:1` },
      { host: 'n1', user: 'u', port: 22, where: `${F}:3` },
    ])
  })

  it('CRLF with a trailing blank CRLF line and no trailing newline', () => {
    expect(parseHostfile('a\r\nb', F).hosts.map((h) => h.host)).toEqual(['a', 'b'])
    expect(parseHostfile('a\r\n\r\n', F).hosts.map((h) => h.host)).toEqual(['a'])
  })

  it('same host on different ports is not a duplicate', () => {
    expect(parseHostfile('n1:22\nn1:23\nn1', F).hosts).toHaveLength(3)
  })

  it.each([
    ['n1 max_slots=8', `${F}:1: ignoring "max_slots=8"`],
    ['n1 slots=2 gpus=4', `${F}:1: ignoring "gpus=4"`],
    ['# x\nn1 foo=', `${F}:2: ignoring "foo="`],
  ])('unknown key=value is a warning, not an error: %j', (text, warning) => {
    const { hosts, warnings } = parseHostfile(text, F)
    expect(hosts).toHaveLength(1)
    expect(warnings).toEqual([warning])
  })
})

describe('parseHostfile: errors', () => {
  it.each<[string, string, RegExp]>([
    ['port 0', 'n1:0', /invalid port "0"/],
    ['port 70000', 'n1:70000', /invalid port "70000"/],
    ['port 65536', 'n1:65536', /invalid port "65536"/],
    ['port abc', 'n1:abc', /invalid port "abc"/],
    ['empty port', 'n1:', /invalid port ""/],
    ['bracketed port abc', '[fe80::1]:abc', /invalid port "abc"/],
    ['user and bad port', 'u@n1:-1', /invalid port "-1"/],
    ['slots= (empty)', 'n1 slots=', /invalid slots ""/],
    ['slots=0', 'n1 slots=0', /invalid slots "0"/],
    ['slots=-1', 'n1 slots=-1', /invalid slots "-1"/],
    ['slots=x', 'n1 slots=x', /invalid slots "x"/],
    ['slots=1.5', 'n1 slots=1.5', /invalid slots "1.5"/],
    ['slots=4097', 'n1 slots=4097', /invalid slots "4097"/],
    ['empty host', ':22', /empty host name/],
    ['shell metachar inside a token', 'host;rm -rf ~', /invalid host name "host;rm"/],
    ['command substitution', '$(reboot)', /invalid host name/],
    ['leading dash host', '-oProxyCommand=x', /invalid host name/],
    ['trailing dash label', 'node-', /invalid host name/],
    ['bad user (leading dash)', '-x@n1', /invalid user name "-x"/],
    ['bad user (slash)', 'a/b@n1', /invalid user name "a\/b"/],
    ['empty user', '@n1', /invalid user name ""/],
    ['bad bare IPv6', 'fe80::g1', /invalid IPv6 address "fe80::g1"/],
    ['bad bracketed host', '[a b]:22', /invalid/],
    ['stray token', 'n1 extra', /unexpected "extra" \(expected key=value/],
    ['stray =value', 'n1 =4', /unexpected "=4"/],
  ])('%s: %j', (_name, line, message) => {
    const err = parseError(`# header\n${line}\n`)
    expect(err.code).toBe('HOSTFILE')
    expect(err.exitCode).toBe(2)
    expect(err.message).toMatch(new RegExp(`^${F}:2: `))
    expect(err.message).toMatch(message)
  })

  it.each([
    ['n1\nn2\nn1', `${F}:3: duplicate host "n1" (first at ${F}:1)`],
    ['n1:22\n# x\nN1:22', `${F}:3: duplicate host "N1" (first at ${F}:1)`],
    ['a@n1\nb@n1', `${F}:2: duplicate host "n1" (first at ${F}:1)`],
    ['[::1]:22\n\n::1\n[::1]:22', `${F}:4: duplicate host "::1" (first at ${F}:1)`],
  ])('duplicate host names the first line: %j', (text, message) => {
    const err = parseError(text)
    expect(err.code).toBe('HOSTFILE')
    expect(err.message).toBe(message)
  })

  it('reports every bad line at once', () => {
    const text = ['good1', 'bad:0', '# fine', 'also-good slots=2', 'x slots=zero', '', 'host;rm -rf ~', 'good1'].join(
      '\n',
    )
    const err = parseError(text)
    expect(err.code).toBe('HOSTFILE')
    const lines = err.message.split('\n')
    expect(lines).toHaveLength(4)
    expect(lines[0]).toMatch(new RegExp(`^${F}:2: invalid port`))
    expect(lines[1]).toMatch(new RegExp(`^${F}:5: invalid slots`))
    expect(lines[2]).toMatch(new RegExp(`^${F}:7: invalid host name`))
    expect(lines[3]).toMatch(new RegExp(`^${F}:8: duplicate host "good1" \\(first at ${F}:1\\)`))
  })

  it.each([
    ['empty file', ''],
    ['only newlines', '\n\n\r\n'],
    ['only whitespace', '   \t \n  '],
    ['only comments', '# a\n  # b\n#c'],
  ])('%s → no hosts', (_name, text) => {
    const err = parseError(text)
    expect(err.code).toBe('HOSTFILE')
    expect(err.exitCode).toBe(2)
    expect(err.message).toContain(F)
    expect(err.message).toMatch(/no hosts/)
  })

  it.each([
    ['NUL in a line', 'n1\0\nn2'],
    ['NUL alone', '\0'],
    ['binary-looking', 'n1\n\x7fELF\0\0\0'],
  ])('NUL bytes are refused: %s', (_name, text) => {
    const err = parseError(text)
    expect(err.code).toBe('HOSTFILE')
    expect(err.exitCode).toBe(2)
    expect(err.message).toMatch(/NUL/)
    expect(err.message).toContain(F)
  })

  it('a file over 8 MiB is refused', () => {
    const err = parseError('n1\n' + '#'.repeat(8 * 1024 * 1024))
    expect(err.code).toBe('HOSTFILE')
    expect(err.message).toMatch(/too large/)
  })
})

describe('parsePort', () => {
  it.each<[string, number | undefined]>([
    ['1', 1],
    ['22', 22],
    ['2222', 2222],
    ['65535', 65535],
    ['00022', 22],
    ['0', undefined],
    ['00000', undefined],
    ['65536', undefined],
    ['70000', undefined],
    ['123456', undefined],
    ['', undefined],
    ['abc', undefined],
    ['-1', undefined],
    ['+22', undefined],
    ['22 ', undefined],
    [' 22', undefined],
    ['2.2', undefined],
    ['1e3', undefined],
    ['0x16', undefined],
  ])('%j → %s', (text, port) => {
    expect(parsePort(text)).toBe(port)
  })
})

describe('parseHostfile: host ranges (pdsh / ClusterShell)', () => {
  const hosts = (text: string): Array<Omit<HostEntry, 'where'> & { where?: string }> => parseHostfile(text, F).hosts

  it.each<[string, Array<Omit<HostEntry, 'where'>>]>([
    [
      'gpu[01-03] slots=8',
      [
        { host: 'gpu01', slots: 8 },
        { host: 'gpu02', slots: 8 },
        { host: 'gpu03', slots: 8 },
      ],
    ],
    ['gpu[1-2,7]', [{ host: 'gpu1' }, { host: 'gpu2' }, { host: 'gpu7' }]],
    [
      'rack[1-2]-node[01-02]',
      [{ host: 'rack1-node01' }, { host: 'rack1-node02' }, { host: 'rack2-node01' }, { host: 'rack2-node02' }],
    ],
    [
      'alice@gpu[1-2]:2222 slots=2',
      [
        { host: 'gpu1', user: 'alice', port: 2222, slots: 2 },
        { host: 'gpu2', user: 'alice', port: 2222, slots: 2 },
      ],
    ],
    ['10.0.0.[1-2]', [{ host: '10.0.0.1' }, { host: '10.0.0.2' }]],
    [
      'gpu[1-2] slots=4 max_slots=8',
      [
        { host: 'gpu1', slots: 4 },
        { host: 'gpu2', slots: 4 },
      ],
    ],
  ])('%j', (line, expected) => {
    expect(parseHostfile(line, F).hosts).toEqual(expected.map((e) => ({ ...e, where: `${F}:1` })))
  })

  it('ranges keep line order for ranks; every host of a line names that line', () => {
    expect(hosts('head\n# workers\nw[1-2]\nlast').map((h) => `${h.host}@${h.where}`)).toEqual([
      `head@${F}:1`,
      `w1@${F}:3`,
      `w2@${F}:3`,
      `last@${F}:4`,
    ])
  })

  it.each<[string, string, string]>([
    ['reversed range', 'gpu[5-1]', `${F}:1: invalid host range "gpu[5-1]": "5-1" runs backwards`],
    ['unclosed range', 'gpu[01-', `${F}:1: invalid host range "gpu[01-": "[" without "]"`],
    ['empty range', 'gpu[] slots=2', `${F}:1: invalid host range "gpu[]": empty brackets`],
    ['letters in a range', 'gpu[a-c]', `${F}:1: invalid host range "gpu[a-c]": "a-c" is not N or N-M`],
    [
      'a bad port on every expanded host',
      'gpu[1-2]:0',
      `${F}:1: invalid port "0" (expected 1-65535) (from "gpu[1-2]:0")`,
    ],
    ['a range making a bad name', 'gpu-[1-2]-', `${F}:1: invalid host name "gpu-1-" (from "gpu-[1-2]-")`],
    ['a repeat inside one range', 'gpu[1,1]', `${F}:1: duplicate host "gpu1" (first at ${F}:1)`],
    ['a range over a host of an earlier line', 'gpu2\ngpu[1-3]', `${F}:2: duplicate host "gpu2" (first at ${F}:1)`],
    ['a range repeated', 'gpu[1-3]\ngpu[1-3]', `${F}:2: duplicate host "gpu1" (first at ${F}:1) and 2 more`],
    ['zero padding makes other names', 'gpu[1-2]\ngpu[01-02]\ngpu1', `${F}:3: duplicate host "gpu1" (first at ${F}:1)`],
  ])('%s: %j', (_name, text, message) => {
    const err = parseError(text)
    expect(err.code).toBe('HOSTFILE')
    expect(err.exitCode).toBe(2)
    expect(err.message).toBe(message)
  })

  it("the issue's whole list of mistakes, reported at once with file:line", () => {
    const text = [
      'good[1-2]',
      'gpu[5-1]',
      'gpu[01-',
      'a slots=',
      'b slots=-1',
      'c slots=x',
      'd:99999',
      ':22',
      'good[2-3]',
      '@x',
    ].join('\n')
    expect(parseError(text).message.split('\n')).toEqual([
      `${F}:2: invalid host range "gpu[5-1]": "5-1" runs backwards`,
      `${F}:3: invalid host range "gpu[01-": "[" without "]"`,
      `${F}:4: invalid slots "" (expected a whole number from 1 to 4096)`,
      `${F}:5: invalid slots "-1" (expected a whole number from 1 to 4096)`,
      `${F}:6: invalid slots "x" (expected a whole number from 1 to 4096)`,
      `${F}:7: invalid port "99999" (expected 1-65535)`,
      `${F}:8: empty host name`,
      `${F}:9: duplicate host "good2" (first at ${F}:1)`,
      `${F}:10: invalid user name ""`,
    ])
  })

  it('a file of garbage reports its first 50 errors and counts the rest', () => {
    const lines = parseError(Array.from({ length: 80 }, (_, i) => `bad${i}:x`).join('\n')).message.split('\n')
    expect(lines).toHaveLength(51)
    expect(lines[0]).toBe(`${F}:1: invalid port "x" (expected 1-65535)`)
    expect(lines[50]).toBe('… and 30 more errors')
  })

  it('more than 65536 hosts in all is refused', () => {
    expect(parseError('a[1-40000]\nb[1-40000]').message).toBe(`${F}:2: more than 65536 hosts`)
  })
})

describe('parseHostList (--hosts, SLURM_JOB_NODELIST)', () => {
  it.each<[string, Array<Omit<HostEntry, 'where'> & { where: string }>]>([
    ['a', [{ host: 'a', where: '--hosts:1' }]],
    [
      'a,b',
      [
        { host: 'a', where: '--hosts:1' },
        { host: 'b', where: '--hosts:2' },
      ],
    ],
    [
      'gpu[1-2,7]',
      [
        { host: 'gpu1', where: '--hosts:1' },
        { host: 'gpu2', where: '--hosts:1' },
        { host: 'gpu7', where: '--hosts:1' },
      ],
    ],
    [
      'u@a:2222, [fe80::1]:22 ,fe80::2',
      [
        { host: 'a', user: 'u', port: 2222, where: '--hosts:1' },
        { host: 'fe80::1', port: 22, where: '--hosts:2' },
        { host: 'fe80::2', where: '--hosts:3' },
      ],
    ],
    [
      'a slots=2,b',
      [
        { host: 'a', slots: 2, where: '--hosts:1' },
        { host: 'b', where: '--hosts:2' },
      ],
    ],
  ])('%j', (text, hosts) => {
    expect(parseHostList(text, '--hosts')).toEqual({ hosts, warnings: [] })
  })

  it.each<[string, string]>([
    ['a,,b', '--hosts:2: empty host name'],
    ['a,', '--hosts:2: empty host name'],
    [
      'gpu[5-1],x:0',
      '--hosts:1: invalid host range "gpu[5-1]": "5-1" runs backwards\n--hosts:2: invalid port "0" (expected 1-65535)',
    ],
    ['gpu[1-3],gpu2', '--hosts:2: duplicate host "gpu2" (first at --hosts:1)'],
  ])('%j is refused', (text, message) => {
    let error: unknown
    try {
      parseHostList(text, '--hosts')
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(FanoutError)
    expect((error as FanoutError).code).toBe('HOSTFILE')
    expect((error as FanoutError).message).toBe(message)
  })
})

describe('parseHostfile: bad input found by the corpus (issue 8)', () => {
  // Each of these reached the connection phase before: a host that can never be reached, or a count
  // silently dropped.
  it.each<[string, string, string]>([
    ['colons only', ':::', `${F}:1: invalid IPv6 address ":::"`],
    ['three groups', '1:2:3', `${F}:1: invalid IPv6 address "1:2:3"`],
    ['bracketed colons only', '[:::]:22', `${F}:1: invalid IPv6 address ":::"`],
    ['two zones', 'fe80::1%a%b', `${F}:1: invalid IPv6 address "fe80::1%a%b"`],
    ['an IPv4 address out of range', '999.999.999.999', `${F}:1: invalid IPv4 address "999.999.999.999"`],
    ['a bare number (the resolver reads 0.0.0.123)', '123', `${F}:1: invalid IPv4 address "123"`],
    ['a short IPv4 address (the resolver reads 1.2.0.3)', '1.2.3', `${F}:1: invalid IPv4 address "1.2.3"`],
    [
      'a range of bad IPv4 addresses',
      '10.0.0.[255-256]',
      `${F}:1: invalid IPv4 address "10.0.0.256" (from "10.0.0.[255-256]")`,
    ],
    [
      'a label over 63 characters',
      `${'a'.repeat(64)}.example`,
      `${F}:1: invalid host name "${'a'.repeat(64)}.example" (longer than DNS allows: 63 characters a label, 253 in all)`,
    ],
    ['slots= twice', 'h1 slots=2 slots=3', `${F}:1: slots= given twice (slots=2 and slots=3)`],
    ['slots= twice, the same', 'h[1-2] slots=2 slots=2', `${F}:1: slots= given twice (slots=2 and slots=2)`],
    ['a NUL byte names its line', 'h1\r\nh2\r\nh\u00003', `${F}:3: not a text file (contains NUL bytes)`],
  ])('%s: %j', (_name, line, message) => {
    const err = parseError(line)
    expect(err.code).toBe('HOSTFILE')
    expect(err.message).toBe(message)
  })

  it('a huge garbage line is quoted only in part', () => {
    const err = parseError(`h1 ${'x'.repeat(1_000_000)}`)
    expect(err.message).toBe(
      `${F}:1: unexpected "${'x'.repeat(80)}"… (1000000 characters) (expected key=value after the host)`,
    )
  })

  it('a 5 MB host name is refused quickly, its message short', () => {
    const started = Date.now()
    const err = parseError('a'.repeat(5_000_000))
    expect(Date.now() - started).toBeLessThan(2000)
    expect(err.message.length).toBeLessThan(300)
    expect(err.message).toMatch(/longer than DNS allows/)
  })

  it.each(['10.0.0.1', '255.255.255.255', `${'a'.repeat(63)}.example`, 'n1.', '10-0-0-1'])(
    '%j is still a host',
    (host) => {
      expect(parseHostfile(host, F).hosts.map((h) => h.host)).toEqual([host])
    },
  )
})

describe('hostNameProblem and isHostOrAddress', () => {
  it.each<[string, string | undefined]>([
    ['gpu01', undefined],
    ['', 'empty host name'],
    ['a;b', 'invalid host name "a;b"'],
    ['1.2.3.4', undefined],
    ['1.2.3.4.5', 'invalid IPv4 address "1.2.3.4.5"'],
  ])('%j → %s', (host, problem) => {
    expect(hostNameProblem(host)).toBe(problem)
  })

  it.each<[string, boolean]>([
    ['gpu01', true],
    ['10.0.0.1', true],
    ['fe80::1', true],
    ['fe80::1%eth0', true],
    ['::::', false],
    ['-x', false],
    ['a;b', false],
    ['10.0.0.256', false],
    ['', false],
  ])('isHostOrAddress(%j) → %s', (text, ok) => {
    expect(isHostOrAddress(text)).toBe(ok)
  })
})
