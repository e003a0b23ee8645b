import { useEffect, useState } from "preact/hooks";

/** Re-renders the calling component whenever `subscribe`'s source reports a change. */
export function useSubscription(subscribe: (listener: () => void) => () => void): void {
  const [, setTick] = useState(0);
  useEffect(() => subscribe(() => setTick((tick) => tick + 1)), [subscribe]);
}

/** A clock for relative times and presence ages, ticking once a minute. */
export function useMinuteClock(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 60_000);
    return () => clearInterval(timer);
  }, []);
  return now;
}
