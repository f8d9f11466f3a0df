interface Point { x: number; y?: string }
type Id = string | number;
enum Color { Red = 1, Green }
export class Store<T> implements Base {
  private readonly items: T[] = [];  // stored items
  constructor(public name: string) {}
  get size(): number { return this.items.length; }
}
