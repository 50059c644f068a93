import "@testing-library/jest-dom/vitest";
import { cleanup } from "@testing-library/react";
import { afterEach } from "vitest";

afterEach(() => {
  cleanup();
  sessionStorage.clear();
});

// jsdom has no layout; CodeMirror measures text ranges.
const empty = { length: 0, item: () => null, [Symbol.iterator]: [][Symbol.iterator] };
Range.prototype.getClientRects = () => empty as unknown as DOMRectList;
Range.prototype.getBoundingClientRect = () => new DOMRect(0, 0, 0, 0);
