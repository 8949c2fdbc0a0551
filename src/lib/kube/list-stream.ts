// Splits a List answer (`{"kind":"PodList",...,"items":[{...},{...}]}`) into its items as its bytes arrive, so a
// list page is never held whole: neither as one string of several MiB nor as one parsed tree of every item at once.
// Each item is handed over as its own small JSON text the moment its closing brace arrives; the caller parses it,
// trims it (an informer's transform) and drops it, so the full object dies young in V8's new space instead of
// being promoted with the rest of its page. That promotion was the relist's memory peak: at 1,000 Services x 100
// nodes a forced relist parsed 200 pages of 500 lb-pods while the old cache was still held, and the old generation
// grew by the pages' garbage until a full collection came (docs/design/0012-api-discipline-at-scale.md,
// "Addendum 3").
//
// Only the bytes outside the top-level "items" array are kept (kind, apiVersion, metadata with resourceVersion and
// continue), and end() returns them as the list's JSON with `"items":[]`. The scan is byte-wise: structural
// characters are ASCII and never occur inside a multi-byte UTF-8 sequence, so cutting at them is safe.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;

/** Malformed or truncated list JSON; the message says what was wrong. */
export class ListStreamError extends Error {
  override readonly name = "ListStreamError";
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

export class ListItemSplitter {
  /** Open objects and arrays around the current byte. */
  private depth = 0;
  private inString = false;
  /** The previous byte was a backslash inside a string (possibly at the end of the previous chunk). */
  private escaped = false;
  /** 0: before the items array, 1: inside it, 2: after it. */
  private itemsState: 0 | 1 | 2 = 0;
  /** At depth 1, the next string is a key (after "{" or ","). */
  private expectKey = false;
  /** The key string being read at depth 1 (keys only, capped: only "items" matters). */
  private readingKey = false;
  private key = "";
  /** The last complete key at depth 1, for the value that follows it. */
  private lastKey = "";
  /** The bytes of the item being read that came in earlier chunks. */
  private itemParts: Buffer[] = [];
  private inItem = false;
  private readonly skeleton: Buffer[] = [];
  private skeletonBytes = 0;
  private sawAnything = false;
  items = 0;

  /** `onItem` gets each element of the top-level "items" array as JSON text, in order. */
  constructor(private readonly onItem: (json: string) => void, private readonly maxSkeletonBytes = 1 << 20) {}

  write(buf: Buffer): void {
    const n = buf.length;
    let i = 0;
    // Where the part of this chunk that belongs to the skeleton (outside the items) or to the current item starts.
    let skelFrom = this.itemsState === 1 ? -1 : 0;
    let itemFrom = this.inItem ? 0 : -1;
    while (i < n) {
      if (this.inString) {
        // To the string's closing quote, skipping escaped bytes. A plain loop: most strings of an object are a few
        // bytes long, where a Buffer.indexOf call per string costs more than it saves.
        const from = i;
        let escaped = this.escaped;
        for (; i < n; i++) {
          const b = buf[i] as number;
          if (escaped) escaped = false;
          else if (b === BACKSLASH) escaped = true;
          else if (b === QUOTE) break;
        }
        this.escaped = escaped;
        if (this.readingKey) this.appendKey(buf, from, i);
        if (i === n) break;
        this.inString = false;
        if (this.readingKey) {
          this.readingKey = false;
          this.lastKey = this.key;
        }
        i++;
        continue;
      }
      const c = buf[i] as number;
      if (isSpace(c)) {
        i++;
        continue;
      }
      this.sawAnything = true;
      if (this.depth === 0 && c !== OPEN_BRACE) throw new ListStreamError("a list answer must be a JSON object");
      if (this.depth === 2 && this.itemsState === 1 && c !== OPEN_BRACE && c !== COMMA && c !== CLOSE_BRACKET) {
        throw new ListStreamError("a list item is not a JSON object");
      }
      if (c === QUOTE) {
        this.inString = true;
        if (this.depth === 1 && this.expectKey) {
          this.readingKey = true;
          this.expectKey = false;
          this.key = "";
        }
      } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        this.depth++;
        if (this.depth === 1) {
          this.expectKey = true;
        } else if (this.depth === 2 && c === OPEN_BRACKET && this.lastKey === "items" && this.itemsState === 0) {
          // The items array opens: the skeleton keeps the "[" and resumes at its "]".
          this.itemsState = 1;
          this.pushSkeleton(buf, skelFrom, i + 1);
          skelFrom = -1;
        } else if (this.depth === 3 && this.itemsState === 1) {
          this.inItem = true;
          itemFrom = i;
        }
      } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        this.depth--;
        if (this.depth === 2 && this.inItem) {
          this.inItem = false;
          this.emitItem(buf, itemFrom, i + 1);
          itemFrom = -1;
        } else if (this.depth === 1 && this.itemsState === 1) {
          this.itemsState = 2;
          skelFrom = i;
        }
      } else if (this.depth === 1 && c === COMMA) {
        this.expectKey = true;
      }
      i++;
    }
    if (this.inItem && itemFrom >= 0) this.itemParts.push(buf.subarray(itemFrom));
    if (skelFrom >= 0) this.pushSkeleton(buf, skelFrom, n);
  }

  /** The list without its items (`"items":[]`), once the whole answer has been written. */
  end(): string {
    if (!this.sawAnything) throw new ListStreamError("the answer is empty");
    if (this.depth !== 0 || this.inString) throw new ListStreamError("the answer ended before the list did");
    return Buffer.concat(this.skeleton, this.skeletonBytes).toString("utf8");
  }

  private appendKey(buf: Buffer, from: number, to: number): void {
    if (this.key.length < 16) this.key += buf.toString("latin1", from, Math.min(to, from + 16));
  }

  private pushSkeleton(buf: Buffer, from: number, to: number): void {
    if (from < 0 || to <= from) return;
    this.skeletonBytes += to - from;
    if (this.skeletonBytes > this.maxSkeletonBytes) {
      throw new ListStreamError(`more than ${this.maxSkeletonBytes} bytes outside the list's items`);
    }
    // A copy, so the skeleton never keeps a whole chunk alive.
    this.skeleton.push(Buffer.from(buf.subarray(from, to)));
  }

  private emitItem(buf: Buffer, from: number, to: number): void {
    let text: string;
    if (this.itemParts.length === 0) {
      text = buf.toString("utf8", from, to);
    } else {
      this.itemParts.push(buf.subarray(0, to));
      text = Buffer.concat(this.itemParts).toString("utf8");
      this.itemParts = [];
    }
    this.items++;
    this.onItem(text);
  }
}
