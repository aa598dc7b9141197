/** Sizes and durations as stack config writes them, resolved to bytes and seconds (components/core/units.ts). */
import { GIB, MIB, parseDuration, parseSize, sizeName } from "../../../components/core/units";

describe("sizes in docker's units", () => {
  it.each([
    ["512m", 512 * MIB],
    ["4g", 4 * GIB],
    ["1.5g", 1.5 * GIB],
    ["1024", 1024],
    ["4GiB", 4 * GIB],
    ["64MB", 64 * MIB],
    ["2T", 2 * 1024 ** 4],
    ["100k", 100 * 1024],
    ["10b", 10],
    [" 8 g ", 8 * GIB],
  ])("reads %j as %d bytes", (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(["", "4 gigs", "-1g", "0", "0.4", "g", "1.2.3m", "4x", "4p", "1,5g", "m512", "20ib", "9999999t"])("refuses %j", (text) => {
    expect(parseSize(text)).toBeUndefined();
  });

  it.each([
    [2 * GIB, "2g"],
    [512 * MIB, "512m"],
    [1536 * MIB, "1536m"],
    [1000, "1000 bytes"],
  ])("writes %d bytes back as %s", (bytes, text) => {
    expect(sizeName(bytes)).toBe(text);
  });
});

describe("durations", () => {
  it.each([
    ["90", 90],
    ["90s", 90],
    ["10m", 600],
    ["1h", 3600],
    ["0", 0],
  ])("reads %j as %d seconds", (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each(["", "1.5m", "10 minutes", "1d", "-5s", "05m", "m"])("refuses %j", (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});
