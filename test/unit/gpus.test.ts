import { describe, expect, it } from 'vitest'
import { busyGpus, describeBusy, parseGpus, usedGpus, visibleIndices, type Gpu } from '../../src/plan/gpus.js'

const gpus: Gpu[] = [0, 1, 2, 3].map((index) => ({
  index,
  uuid: `GPU-aaaa${index}-0000`,
  memoryUsed: 0,
  memoryTotal: 81559,
}))

describe("parseGpus: nvidia-smi's query lines and ps", () => {
  it('reads GPUs, compute apps and their owners; odd lines are skipped, unknown memory stays unknown', () => {
    const { gpus: list, processes } = parseGpus(
      ['0, GPU-a, 1024, 81559', '1, GPU-b, [N/A], [N/A]', 'garbage', ', GPU-c, 1, 2'],
      ['GPU-b, 4242, 30000', 'GPU-a, 77, [Insufficient Permissions]', 'No running processes found', 'GPU-a, x, 1'],
      ['   4242 alice    python old_train.py --resume', 'junk'],
    )
    expect(list).toEqual([
      { index: 0, uuid: 'GPU-a', memoryUsed: 1024, memoryTotal: 81559 },
      { index: 1, uuid: 'GPU-b' },
    ])
    expect(processes).toEqual([
      { gpuUuid: 'GPU-b', pid: 4242, memory: 30000, user: 'alice', command: 'python old_train.py --resume' },
      { gpuUuid: 'GPU-a', pid: 77 },
    ])
  })
})

describe('visibleIndices: CUDA_VISIBLE_DEVICES as CUDA reads it', () => {
  it.each<[string, number[]]>([
    ['0,2', [0, 2]],
    ['3,1', [3, 1]],
    ['', []],
    ['0,-1,2', [0]],
    ['1,9,2', [1]], // no GPU 9: CUDA stops there
    ['GPU-aaaa2,0', [2, 0]], // a UUID prefix names a GPU
    ['GPU-zzzz,0', []],
  ])('%j → %j', (cvd, indices) => {
    expect(visibleIndices(cvd, gpus)).toEqual(indices)
  })
})

describe('usedGpus: what the job will use', () => {
  it.each<[string, Parameters<typeof usedGpus>[1], number[]]>([
    ['all of them, one process each', { nproc: 4 }, [0, 1, 2, 3]],
    ['fewer processes than GPUs: local rank i on GPU i', { nproc: 2 }, [0, 1]],
    ['the selection (--include h@1,3)', { selected: [1, 3], nproc: 2 }, [1, 3]],
    ['CUDA_VISIBLE_DEVICES', { cvd: '2,3', nproc: 2 }, [2, 3]],
    ['CUDA_VISIBLE_DEVICES, fewer processes', { cvd: '3,2', nproc: 1 }, [3]],
  ])('%s', (_name, use, indices) => {
    expect(usedGpus(gpus, use).map((g) => g.index)).toEqual(indices)
  })

  it('busyGpus: only processes on the GPUs used count, in GPU order', () => {
    const processes = [
      { gpuUuid: 'GPU-aaaa3-0000', pid: 3 },
      { gpuUuid: 'GPU-aaaa1-0000', pid: 1 },
      { gpuUuid: 'GPU-aaaa1-0000', pid: 11 },
    ]
    expect(busyGpus(usedGpus(gpus, { nproc: 2 }), processes).map((b) => [b.gpu.index, b.process.pid])).toEqual([
      [1, 1],
      [1, 11],
    ])
    expect(busyGpus(usedGpus(gpus, { selected: [0, 2], nproc: 2 }), processes)).toEqual([])
  })

  it('describeBusy names GPU, pid, user, command and memory; a pid ps cannot see says so', () => {
    const gpu = gpus[1] as Gpu
    expect(
      describeBusy({
        gpu,
        process: { gpuUuid: gpu.uuid, pid: 4242, memory: 30000, user: 'alice', command: 'python x.py' },
      }),
    ).toBe('GPU 1 is held by pid 4242 (alice: python x.py, 30000 MiB)')
    expect(describeBusy({ gpu, process: { gpuUuid: gpu.uuid, pid: 7 } })).toBe(
      'GPU 1 is held by pid 7 (not visible to ps on the node)',
    )
    expect(
      describeBusy({ gpu, process: { gpuUuid: gpu.uuid, pid: 7, user: 'bob', command: 'x'.repeat(300) } }),
    ).toMatch(/^GPU 1 is held by pid 7 \(bob: x{119}…\)$/)
  })
})
