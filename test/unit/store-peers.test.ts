import { describe, expect, it } from 'vitest'
import { describeJoined, storePeers } from '../../src/supervise/store-peers.js'

// Lines as Linux prints them: 10.99.0.11:29500 (0B00630A:733C) with peers 10.99.0.12 and 10.99.0.11,
// a listening socket (0A), a connection on another port, and an IPv4-mapped IPv6 peer 10.99.0.13.
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:733C 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 1 1 0 100 0 0 10 0
   1: 0B00630A:733C 0C00630A:D431 01 00000000:00000000 00:00000000 00000000  1001        0 2 1 0 20 4 30 10 -1
   2: 0B00630A:733C 0B00630A:D432 01 00000000:00000000 00:00000000 00000000  1001        0 3 1 0 20 4 30 10 -1
   3: 0B00630A:0016 0100630A:D433 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0 20 4 30 10 -1
   4: 0B00630A:733C 0D00630A:D434 06 00000000:00000000 00:00000000 00000000  1001        0 5 1 0 20 4 30 10 -1
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000B00630A:733C 0000000000000000FFFF00000D00630A:D435 01 00000000:00000000 00:00000000 00000000  1001 0 6 1 0 20 4 30 10 -1
   1: 00000000000000000000000001000000:733C 00000000000000000000000001000000:D436 01 00000000:00000000 00:00000000 00000000  1001 0 7 1 0 20 4 30 10 -1
`

describe('storePeers: who is connected to the master port on node 0', () => {
  it('established connections to the port only, IPv4 and IPv6 (mapped or not)', () => {
    expect(storePeers(TCP, 29500).sort()).toEqual(['10.99.0.11', '10.99.0.12', '10.99.0.13', '::1'].sort())
    expect(storePeers(TCP, 22)).toEqual(['10.99.0.1'])
    expect(storePeers(TCP, 1234)).toEqual([])
  })

  it('describeJoined names the nodes connected and those not', () => {
    const nodes = [
      { rank: 0, addrs: ['10.99.0.11'] },
      { rank: 1, addrs: ['10.99.0.12'] },
      { rank: 2, addrs: ['10.99.0.14', '192.168.0.2'] },
    ]
    expect(describeJoined(['10.99.0.11', '10.99.0.12'], nodes, '10.99.0.11:29500')).toEqual({
      text: 'connected to the rendezvous store at 10.99.0.11:29500: node(s) 0, 1; not connected: node(s) 2',
      missing: [2],
    })
    expect(describeJoined(['192.168.0.2', '10.99.0.12', '10.99.0.11'], nodes, 'm:1')).toEqual({
      text: 'every node is connected to the rendezvous store at m:1',
      missing: [],
    })
    expect(describeJoined([], nodes, 'm:1')).toEqual({
      text: 'nothing is connected to the rendezvous store at m:1',
      missing: [],
    })
  })
})
