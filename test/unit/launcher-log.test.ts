import { describe, expect, it } from 'vitest'
import { LauncherLogScanner, pickRootCause } from '../../src/supervise/launcher-log.js'

const T1 =
  'ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: 3) local_rank: 0 (pid: 11187) of binary: /usr/bin/python3\n'
const T2 =
  'E1127 10:00:00.000000 1234 torch/distributed/elastic/multiprocessing/api.py:869] failed (exitcode: -9) local_rank: 5 (pid: 1234) of binary: /usr/bin/python3\n'

describe('LauncherLogScanner', () => {
  it.each([
    [T1, { exitCode: 3, localRank: 0 }],
    [T2, { exitCode: -9, localRank: 5 }],
    ['WARNING: something else\n', undefined],
    [T1.trimEnd(), undefined], // not a whole line yet
  ])('reads %j', (text, expected) => {
    expect(new LauncherLogScanner().push(Buffer.from(text))).toEqual(expected)
  })

  it('finds the report split at every chunk boundary', () => {
    const text = `noise\n${T1}more\n`
    for (let cut = 0; cut <= text.length; cut++) {
      const s = new LauncherLogScanner()
      const found = [s.push(Buffer.from(text.slice(0, cut))), s.push(Buffer.from(text.slice(cut)))].filter(Boolean)
      expect(found, `cut at ${cut}`).toEqual([{ exitCode: 3, localRank: 0 }])
    }
  })

  it.each([
    ['RuntimeError: rank 3 blew up\n', 'RuntimeError: rank 3 blew up', false],
    ['RuntimeError: [./gloo/transport/tcp/pair.cc:598] Connection closed by peer [10.0.0.2]:1234\n', undefined, true],
    ['torch.distributed.elastic.multiprocessing.api.SignalException: Process 1 got signal: 15\n', undefined, true],
    ['torch.distributed.DistNetworkError: Connection reset by peer\n', undefined, true],
    ['  ValueError: bad shape\n', 'ValueError: bad shape', false],
    [`ValueError: ${'x'.repeat(300)}\n`, `ValueError: ${'x'.repeat(188)}…`, false],
    ['Traceback (most recent call last):\n', undefined, false],
    // torch 2.x prefixes each line of a worker's traceback with its rank
    ['[rank3]: RuntimeError: rank 3 blew up\n', 'RuntimeError: rank 3 blew up', false],
    [
      '[rank2]: RuntimeError: [./gloo/transport/tcp/pair.cc:534] Connection closed by peer [10.99.0.32]:3989\n',
      undefined,
      true,
    ],
    ['this line mentions an Error in passing\n', undefined, false],
  ])('classifies %j (own error %j, peer loss %s)', (line, own, peer) => {
    const s = new LauncherLogScanner()
    s.push(Buffer.from(line))
    expect([s.ownError, s.peerLoss]).toEqual([own, peer])
  })

  it('keeps the first own exception, not a later one', () => {
    const s = new LauncherLogScanner()
    s.push(Buffer.from('KeyError: first\nValueError: second\n'))
    expect(s.ownError).toBe('KeyError: first')
  })

  it.each([
    [T1, { exitCode: 3, localRank: 0 }],
    [T2, { exitCode: -9, localRank: 5 }],
    ['WARNING: something else\n', undefined],
  ])('line() reads the whole line %j as push() does', (text, expected) => {
    expect(new LauncherLogScanner().line(Buffer.from(text.trimEnd()))).toEqual(expected)
  })

  it('line() classifies exceptions as push() does', () => {
    const s = new LauncherLogScanner()
    s.line(Buffer.from('RuntimeError: Connection closed by peer'))
    expect(s.onlyConsequences).toBe(true)
    s.line(Buffer.from('  ValueError: bad shape'))
    expect([s.ownError, s.onlyConsequences]).toEqual(['ValueError: bad shape', false])
  })

  it('a report and a later exception in one chunk: both count', () => {
    const s = new LauncherLogScanner()
    expect(s.push(Buffer.from(`${T1}RuntimeError: rank 3 blew up\n`))).toEqual({ exitCode: 3, localRank: 0 })
    expect(s.ownError).toBe('RuntimeError: rank 3 blew up')
  })

  it('a node with its own error is not a mere consequence, even if its other ranks lost peers', () => {
    const s = new LauncherLogScanner()
    s.push(Buffer.from('RuntimeError: Connection closed by peer\nRuntimeError: rank 3 blew up\n'))
    expect(s.onlyConsequences).toBe(false)
  })
})

describe('pickRootCause', () => {
  const c = (name: string, consequence: boolean, afterStop: boolean, at: number) => ({
    name,
    consequence,
    afterStop,
    at,
  })
  it.each([
    [[c('a', false, false, 1), c('b', false, false, 2)], 'a'],
    [[c('peer', true, false, 1), c('own', false, false, 2)], 'own'],
    [[c('peer', true, false, 1), c('own', false, true, 2)], 'own'],
    [[c('after', false, true, 1), c('before', false, false, 2)], 'before'],
    [[c('late', true, false, 5), c('early', true, false, 2)], 'early'],
  ])('%j → %s', (candidates, expected) => {
    expect(pickRootCause(candidates)?.name).toBe(expected)
  })
  it('none without candidates', () => expect(pickRootCause([])).toBeUndefined())
})
