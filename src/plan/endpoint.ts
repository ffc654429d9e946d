/** `addr:port`, an IPv6 address in brackets (`[fd00::1]:29500`), as torchrun and messages write an endpoint. */
export const endpoint = (addr: string, port: number): string => `${addr.includes(':') ? `[${addr}]` : addr}:${port}`
