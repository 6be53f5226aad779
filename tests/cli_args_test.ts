import assert from "node:assert/strict";
import { HELP, parseCpArgs, parseSize, workingDirectory } from "../src/cli/args.ts";
import { DEFAULT_BLOCK_SIZE, DEFAULT_QUEUE_DEPTH } from "../src/copy_options.ts";

Deno.test("cp args: parseSize accepts bytes and binary units, rejects the rest", () => {
  const ok: Array<[string, number]> = [
    ["4096", 4096],
    ["128k", 131072],
    ["128K", 131072],
    ["128kb", 131072],
    ["128KiB", 131072],
    ["1m", 1048576],
    ["1M", 1048576],
    ["1mib", 1048576],
    ["2g", 2 * 1024 ** 3],
    ["0", 0],
    ["512b", 512],
    [" 64k ", 65536],
  ];
  for (const [text, n] of ok) assert.equal(parseSize(text), n, text);
  for (const text of ["", "k", "1.5m", "-1k", "12x", "1 2", "0x100", "1e6", "9007199254740993"]) {
    assert.throws(() => parseSize(text), RangeError, text);
  }
  assert.throws(() => parseSize("12x"), /invalid size "12x"/);
});

Deno.test("cp args: defaults, every flag, short forms", () => {
  const d = parseCpArgs(["a", "b"]);
  assert.equal(d.kind, "copy");
  if (d.kind !== "copy") return;
  assert.deepEqual(d.args, {
    sources: ["a"],
    destination: "b",
    recursive: false,
    queueDepth: DEFAULT_QUEUE_DEPTH,
    blockSize: DEFAULT_BLOCK_SIZE,
    sqpoll: false,
    preserve: false,
    force: false,
    progress: undefined,
    quiet: false,
    cwd: undefined,
    direct: false,
    splice: true,
  });
  // Everything after `--` is a path, even with a leading dash.
  const flags = [
    "-r",
    "--queue-depth",
    "64",
    "--block-size=1m",
    "--sqpoll",
    "--preserve",
    "--force",
    "--direct",
    "--no-splice",
  ];
  const all = parseCpArgs([...flags, "--progress", "--cwd", "/tmp", "x", "--", "-y", "z"]);
  assert.equal(all.kind, "copy");
  if (all.kind !== "copy") return;
  assert.deepEqual(all.args, {
    sources: ["x", "-y"],
    destination: "z",
    recursive: true,
    queueDepth: 64,
    blockSize: 1048576,
    sqpoll: true,
    preserve: true,
    force: true,
    progress: true,
    quiet: false,
    cwd: "/tmp",
    direct: true,
    splice: false,
  });
  const short = parseCpArgs(["-rfpq", "a", "b"]);
  assert.ok(short.kind === "copy");
  assert.equal(short.args.recursive && short.args.force && short.args.preserve && short.args.quiet, true);
  assert.equal(short.args.progress, false, "-q turns the progress bar off");
  const off = parseCpArgs(["--no-progress", "--sqpoll", "--no-sqpoll", "a", "b"]);
  assert.ok(off.kind === "copy" && off.args.progress === false);
  assert.equal(off.args.sqpoll, false, "the last of --sqpoll/--no-sqpoll wins");
});

Deno.test("cp args: help and usage errors", () => {
  assert.deepEqual(parseCpArgs(["--help"]), { kind: "help" });
  assert.deepEqual(parseCpArgs(["-h", "a", "b"]), { kind: "help" });
  const errors: Array<[string[], RegExp]> = [
    [[], /missing source and destination/],
    [["a"], /missing destination after "a"/],
    [
      ["--bogus", "a", "b"],
      /^unknown option '--bogus' \(a file named '--bogus' goes after '--': cp -- '--bogus' DST\)$/,
    ],
    [["-x", "a", "b"], /^unknown option '-x' /],
    [["-rx", "a", "b"], /^unknown option '-x' /],
    [["--queue-depth", "0", "a", "b"], /--queue-depth must be from 1 to 4096, got 0/],
    [["--queue-depth", "x", "a", "b"], /--queue-depth must be a whole number/],
    [["--queue-depth", "99999", "a", "b"], /--queue-depth must be from 1 to 4096/],
    [["--block-size", "1", "a", "b"], /--block-size must be from 512 bytes to 64m/],
    [["--block-size", "1g", "a", "b"], /--block-size must be from 512 bytes to 64m/],
    [["--block-size", "12x", "a", "b"], /invalid size "12x"/],
    [["--queue-depth"], /argument missing|requires|missing/i],
    [["", "b"], /empty path/],
    // `--no-` only for the options that have one in --help (they were accepted, and did nothing
    // or something unasked: `--no-help` copied).
    ...["recursive", "force", "preserve", "quiet", "help", "direct"].map((name): [string[], RegExp] => [
      [`--no-${name}`, "a", "b"],
      new RegExp(`^unknown option '--no-${name}'$`),
    ]),
  ];
  for (const [argv, message] of errors) {
    const r = parseCpArgs(argv);
    assert.equal(r.kind, "error", argv.join(" "));
    if (r.kind === "error") assert.match(r.message, message, argv.join(" "));
  }
  for (
    const flag of [
      "--recursive",
      "--queue-depth",
      "--block-size",
      "--sqpoll",
      "--no-sqpoll",
      "--preserve",
      "--force",
      "--progress",
      "-q",
      "--help",
    ]
  ) {
    assert.ok(HELP.includes(flag), `--help mentions ${flag}`);
  }
  for (const name of ["sqpoll", "splice", "progress"]) {
    assert.equal(parseCpArgs([`--no-${name}`, "a", "b"]).kind, "copy", `--no-${name}`);
    assert.ok(HELP.includes(`--no-${name}`), `--help mentions --no-${name}`);
  }
  for (const line of HELP.split("\n")) {
    assert.ok(line.length <= 92, `a --help line of ${line.length} columns: ${line}`);
  }
});

Deno.test("cp args: --cwd given again is taken from the one before; an empty one is ignored", () => {
  assert.equal(workingDirectory([]), undefined);
  assert.equal(workingDirectory(["rel"]), "rel");
  assert.equal(workingDirectory(["/home/u", "sub"]), "/home/u/sub");
  assert.equal(workingDirectory(["/", "sub"]), "/sub");
  assert.equal(workingDirectory(["/home/u/", "../v"]), "/home/u/../v");
  assert.equal(workingDirectory(["/home/u", "/abs"]), "/abs");
  assert.equal(workingDirectory(["/home/u", ""]), "/home/u");
  const parsed = parseCpArgs(["--cwd", "/home/u", "--cwd", "sub", "a", "b"]);
  assert.equal(parsed.kind === "copy" && parsed.args.cwd, "/home/u/sub");
});
