import { StringDecoder } from 'node:string_decoder'
import { FanoutError } from '../errors.js'

/** The two ends of a terminal a prompt uses: process.stdin and process.stderr, or fakes in tests. */
export interface SecretTerminal {
  input: {
    setRawMode(raw: boolean): unknown
    resume(): unknown
    pause(): unknown
    on(event: 'data', listener: (chunk: Buffer) => void): unknown
    off(event: 'data', listener: (chunk: Buffer) => void): unknown
  }
  output: { write(text: string): unknown }
}

/**
 * Reads a secret from the terminal without echo (a passphrase, a password). Ctrl-C at the prompt ends
 * fanout (exit 130) before anything was contacted; Ctrl-D on an empty line is a refusal.
 *
 * Echo goes off before the prompt is shown, as OpenSSH's readpassphrase does: whoever answers the
 * moment the prompt appears (a person typing ahead, a script) must never see the answer echoed.
 */
export function askSecret(prompt: string, { input, output }: SecretTerminal): Promise<string> {
  return new Promise((resolve, reject) => {
    // A key whose UTF-8 bytes arrive in two reads is one character, not two replacement marks.
    const decoder = new StringDecoder('utf8')
    let value = ''
    const finish = (): void => {
      input.off('data', onData)
      input.setRawMode(false)
      input.pause()
      output.write('\n')
    }
    const onData = (chunk: Buffer): void => {
      for (const ch of decoder.write(chunk)) {
        if (ch === '\r' || ch === '\n') return (finish(), resolve(value))
        if (ch === '\u0003') return (finish(), reject(new FanoutError('interrupted at the prompt', 'INTERRUPTED')))
        if (ch === '\u0004' && value === '')
          return (finish(), reject(new FanoutError('no input at the prompt (end of file)', 'USAGE')))
        value = ch === '\u007f' || ch === '\b' ? [...value].slice(0, -1).join('') : value + ch
      }
    }
    input.setRawMode(true)
    input.on('data', onData)
    input.resume()
    output.write(prompt)
  })
}
