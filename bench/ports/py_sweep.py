"""The plain Python asyncio sweep of the issue: asyncio.open_connection under a semaphore of
1,000 with a 1 s timeout. Reads addresses from stdin, prints "ADDR up|refused|timeout|error"."""
import asyncio
import sys

PORT = int(sys.argv[1])
LIMIT = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
TIMEOUT = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0


async def check(addr, sem):
    async with sem:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(addr, PORT), TIMEOUT)
            writer.close()
            return addr, "up"
        except ConnectionRefusedError:
            return addr, "refused"
        except asyncio.TimeoutError:
            return addr, "timeout"
        except OSError:
            return addr, "error"


async def main():
    addrs = [line.strip() for line in sys.stdin if line.strip()]
    sem = asyncio.Semaphore(LIMIT)
    results = await asyncio.gather(*(check(a, sem) for a in addrs))
    sys.stdout.write("".join(f"{a} {s}\n" for a, s in results))


asyncio.run(main())
