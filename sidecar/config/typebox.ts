/**
 * The parts of TypeBox the project uses, imported one by one; every module
 * takes `Type` and `Value` from here, never from TypeBox. The `Type` and
 * `Value` namespaces of TypeBox's index modules hold every builder and every
 * value function, so importing them anywhere put 200 KB of TypeBox source in
 * the sidecar's start-up chunks, where these need 71 KB: less source, code
 * and metadata in every sidecar (test/bench/README.md, "Marginal memory").
 */
import { Array as TArray, Boolean as TBoolean, Integer, Kind, Literal, Object as TObject, Omit, Optional, Record, String as TString, Union } from '@sinclair/typebox';
import { Errors } from '@sinclair/typebox/errors';
import { Check, Clone, Default } from '@sinclair/typebox/value';

/** The schema builders of the config, policy, CRD and injector schemas: TypeBox's `Type`, those members only. */
export const Type = { Array: TArray, Boolean: TBoolean, Integer, Literal, Object: TObject, Omit, Optional, Record, String: TString, Union } as const;

/** The value functions of the loaders and the injector: TypeBox's `Value`, those members only. */
export const Value = { Check, Clone, Default, Errors } as const;

/** TypeBox's `Kind` symbol: the key of a schema's kind name (`Object`, `String`, …), for code that walks schemas. */
export { Kind };
