/**
 * Output in the order of the sources while the copies of several run at once: what a copy says
 * waits until every source named before it has said all it had to say, so the messages come out
 * as a copy of one source after another would give them (as GNU cp gives them).
 *
 * @module
 */

/** One source's turn to speak: {@link InOrder.open} returns it. */
export interface Turn {
  /** Runs `say` now if every earlier turn has ended, else once they have. */
  say(say: () => void): void;
  /** Ends this turn: later turns may speak once the earlier ones have ended too. */
  end(): void;
}

interface Pending {
  said: (() => void)[];
  ended: boolean;
}

/** Turns in the order they were opened (see {@link Turn}). */
export class InOrder {
  /** The turns not ended, or ended behind one that has not: the first one speaks. */
  #turns: Pending[] = [];
  #first = 0;

  /** Opens the next turn. */
  open(): Turn {
    const turn: Pending = { said: [], ended: false };
    this.#turns.push(turn);
    return {
      say: (say) => {
        if (this.#turns[this.#first] === turn) say();
        else turn.said.push(say);
      },
      end: () => {
        turn.ended = true;
        this.#advance();
      },
    };
  }

  #advance(): void {
    const turns = this.#turns;
    while (this.#first < turns.length && turns[this.#first].ended) {
      turns[this.#first++] = undefined as unknown as Pending; // (let it go)
      const next = turns[this.#first];
      if (next === undefined) break;
      for (const say of next.said) say();
      next.said.length = 0;
    }
    if (this.#first === turns.length) {
      turns.length = 0;
      this.#first = 0;
    }
  }
}
