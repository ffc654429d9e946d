import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          // Builds the Debian 11 root (its Python 3.9) the run supervisor tests use, once.
          globalSetup: ['test/unit/global-setup.ts'],
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          // Brings up the namespaced sshd cluster once for every end-to-end file, and removes it after.
          globalSetup: ['test/e2e/global-setup.ts'],
          // The files share one cluster and its ports: run them one at a time.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 900_000,
        },
      },
    ],
  },
})
