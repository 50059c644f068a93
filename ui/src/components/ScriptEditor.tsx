/**
 * The connector script editor: CodeMirror 6 with Python highlighting. `errorLine` marks a line (from a
 * 422 script_invalid's `line`, or a failed try-out's) with a red background and a gutter marker.
 */
import { python } from "@codemirror/lang-python";
import { EditorState, StateEffect, StateField, type Extension } from "@codemirror/state";
import { Decoration, EditorView, GutterMarker, gutter, type DecorationSet } from "@codemirror/view";
import { basicSetup } from "codemirror";
import { useEffect, useRef } from "react";

interface Mark {
  line: number;
  message: string;
}

const setMark = StateEffect.define<Mark | null>();

const markField = StateField.define<{ mark: Mark | null; deco: DecorationSet }>({
  create: () => ({ mark: null, deco: Decoration.none }),
  update(value, tr) {
    let { mark, deco } = value;
    deco = deco.map(tr.changes);
    for (const effect of tr.effects) {
      if (!effect.is(setMark)) continue;
      mark = effect.value && effect.value.line >= 1 && effect.value.line <= tr.state.doc.lines ? effect.value : null;
      deco = mark
        ? Decoration.set([
            Decoration.line({
              class: "cm-errorLine",
              attributes: { "data-error-line": String(mark.line), title: mark.message },
            }).range(tr.state.doc.line(mark.line).from),
          ])
        : Decoration.none;
    }
    return { mark, deco };
  },
  provide: (f) => EditorView.decorations.from(f, (v) => v.deco),
});

class ErrorMarker extends GutterMarker {
  constructor(readonly message: string) {
    super();
  }
  toDOM() {
    const el = document.createElement("span");
    el.className = "cm-errorMarker";
    el.textContent = "●";
    el.title = this.message;
    return el;
  }
}

const errorGutter = gutter({
  class: "cm-errorGutter",
  lineMarker(view, line) {
    const { mark } = view.state.field(markField);
    if (!mark) return null;
    return view.state.doc.lineAt(line.from).number === mark.line ? new ErrorMarker(mark.message) : null;
  },
  lineMarkerChange: (update) => update.transactions.some((tr) => tr.effects.some((e) => e.is(setMark))),
});

export interface ScriptEditorProps {
  value: string;
  onChange?: (value: string) => void;
  readOnly?: boolean;
  errorLine?: number | null;
  errorMessage?: string;
  labelledBy: string;
  describedBy?: string;
}

export function ScriptEditor({ value, onChange, readOnly, errorLine, errorMessage, labelledBy, describedBy }: ScriptEditorProps) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const onChangeRef = useRef(onChange);
  onChangeRef.current = onChange;

  useEffect(() => {
    const extensions: Extension[] = [
      basicSetup,
      python(),
      markField,
      errorGutter,
      EditorView.updateListener.of((u) => {
        if (u.docChanged) onChangeRef.current?.(u.state.doc.toString());
      }),
      EditorView.contentAttributes.of({
        "aria-labelledby": labelledBy,
        ...(describedBy ? { "aria-describedby": describedBy } : {}),
      }),
      EditorState.readOnly.of(!!readOnly),
      EditorView.editable.of(!readOnly),
    ];
    const v = new EditorView({ parent: host.current!, state: EditorState.create({ doc: value, extensions }) });
    view.current = v;
    return () => {
      v.destroy();
      view.current = null;
    };
    // The editor is made once per mount; `value` changes from outside are applied below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [readOnly, labelledBy, describedBy]);

  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== value) {
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
    }
  }, [value]);

  useEffect(() => {
    view.current?.dispatch({
      effects: setMark.of(errorLine ? { line: errorLine, message: errorMessage ?? "error" } : null),
    });
  }, [errorLine, errorMessage, readOnly]);

  return <div className="script-editor" ref={host} data-testid="script-editor" />;
}
