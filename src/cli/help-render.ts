import { parseArgs } from './dispatch.js'
import { FAST_ARGV, FAST_WIDTHS } from './fast-help.js'

/**
 * Every text fast-help.ts can print, keyed as fastKey() keys them, rendered by the CLI's own parser
 * exactly as main() prints it (the text and a newline). yargs reads the locale from process.env, so
 * this is called with an English one (see scripts/render-help.mjs).
 */
export async function renderFastTexts(): Promise<Record<string, string>> {
  const texts: Record<string, string> = {}
  for (const argv of FAST_ARGV) {
    for (const width of FAST_WIDTHS) {
      const parsed = await parseArgs([...argv], '/', width, {})
      if (parsed.kind !== 'help' && parsed.kind !== 'version')
        throw new Error(`${argv.join(' ')} is not answered with a text (${parsed.kind})`)
      texts[`${argv.join(' ')}@${width}`] = parsed.text + '\n'
    }
  }
  return texts
}
