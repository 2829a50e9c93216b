#!/usr/bin/env node
// Scores a GGUF file with llama.cpp (node-llama-cpp's prebuilt CPU build):
// greedy generation from a prompt, and perplexity on token-id rows.
//
//   node llama_score.mjs --model FILE.gguf [--rows ids.jsonl] [--max-rows N]
//                        [--generate N] [--prompt TEXT] [--threads N (default 1; 0: llama.cpp picks)]
//   node llama_score.mjs --check     (loads the prebuilt binary, prints its build; no model)
//
// Perplexity is defined as `signround-worker eval` defines it (src/eval/perplexity.cc):
// exp of the mean next-token NLL over every row, where position p of a row predicts
// token p + 1 (positions 0..len-2), averaged over all predictions of all rows together.
// Each row is evaluated from an empty KV cache (one sequence, cleared between rows).
// The probabilities are llama.cpp's full softmax over the vocabulary: the sampler is
// greedy (temperature 0, no penalties, no bias), which picks a token without touching
// the logits, so no top-k / top-p / temperature shapes them; the script checks that
// every distribution covers the whole vocabulary and sums to 1.
//
// Prints one JSON object on stdout:
//   {"perplexity", "mean_nll", "predictions", "rows", "generated_text", "generated_tokens"}
// (perplexity / mean_nll null without --rows; generated_text "" and generated_tokens []
// without --generate). Any error: a message on stderr and exit code 1 (2 for bad usage).

import fs from "node:fs";
import readline from "node:readline";
import process from "node:process";

const USAGE =
    "usage: node llama_score.mjs --model FILE.gguf [--rows ids.jsonl] [--max-rows N] " +
    "[--generate N] [--prompt TEXT] [--threads N]\n       node llama_score.mjs --check";

class UsageError extends Error {}

function parseArgs(argv) {
    const opts = {model: null, rows: null, maxRows: null, generate: 0, prompt: "Once upon a time", threads: 1,
                  check: false};
    const intArg = (name, value, min) => {
        if (value === undefined || !/^[0-9]+$/.test(value) || Number(value) < min)
            throw new UsageError(`${name} needs an integer >= ${min}, got ${JSON.stringify(value)}`);
        return Number(value);
    };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        const next = () => {
            if (i + 1 >= argv.length) throw new UsageError(`${arg} needs a value`);
            return argv[++i];
        };
        switch (arg) {
            case "--model": opts.model = next(); break;
            case "--rows": opts.rows = next(); break;
            case "--max-rows": opts.maxRows = intArg(arg, next(), 1); break;
            case "--generate": opts.generate = intArg(arg, next(), 0); break;
            case "--prompt": opts.prompt = next(); break;
            case "--threads": opts.threads = intArg(arg, next(), 0); break;
            case "--check": opts.check = true; break;
            case "-h": case "--help":
                process.stdout.write(USAGE + "\n");
                process.exit(0);
                break;
            default: throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
        }
    }
    if (opts.check) return opts;
    if (opts.model === null) throw new UsageError("--model is required");
    if (opts.rows === null && opts.generate === 0)
        throw new UsageError("nothing to do: give --rows and/or --generate N");
    return opts;
}

// Token-id rows, read as `signround-worker eval` reads them: one {"input_ids": [...]}
// object per non-blank line.
async function readRows(file, maxRows) {
    const rows = [];
    const lines = readline.createInterface({input: fs.createReadStream(file), crlfDelay: Infinity});
    let lineNo = 0;
    for await (const line of lines) {
        lineNo++;
        if (line.trim() === "") continue;
        let obj;
        try {
            obj = JSON.parse(line);
        } catch (e) {
            throw new Error(`${file}:${lineNo}: not JSON: ${e.message}`);
        }
        const ids = obj?.input_ids;
        if (!Array.isArray(ids) || !ids.every((t) => Number.isInteger(t) && t >= 0))
            throw new Error(`${file}:${lineNo}: "input_ids" must be an array of non-negative integers`);
        rows.push(ids);
        if (maxRows !== null && rows.length >= maxRows) break;
    }
    lines.close();
    if (rows.length === 0) throw new Error(`${file}: no rows`);
    return rows;
}

// Greedy, unpenalised sampling: the sampler chain is just llama.cpp's greedy sampler.
const GREEDY = {temperature: 0};

async function rowNll(sequence, row, vocabSize) {
    await sequence.clearHistory();
    const input = row.map((token, p) =>
        p + 1 < row.length ? [token, {generateNext: {probabilities: true, options: GREEDY}}] : token);
    const out = await sequence.controlledEvaluate(input);
    let sum = 0;
    for (let p = 0; p + 1 < row.length; p++) {
        const probs = out[p]?.next?.probabilities;
        if (probs === undefined) throw new Error(`no probabilities for position ${p}`);
        if (probs.size !== vocabSize)
            throw new Error(`position ${p}: a distribution over ${probs.size} tokens, not the ${vocabSize} of the vocabulary`);
        let total = 0;
        for (const v of probs.values()) total += v;
        if (Math.abs(total - 1) > 1e-3) throw new Error(`position ${p}: probabilities sum to ${total}`);
        const prob = probs.get(row[p + 1]);
        if (prob === undefined) throw new Error(`position ${p}: no probability for token ${row[p + 1]}`);
        sum += -Math.log(prob);
    }
    return sum;
}

async function generate(sequence, model, prompt, count) {
    await sequence.clearHistory();
    let tokens = model.tokenize(prompt);
    if (model.tokens.shouldPrependBosToken && model.tokens.bos !== null) tokens = [model.tokens.bos, ...tokens];
    if (tokens.length === 0) throw new Error("the prompt has no tokens");
    const generated = [];
    let input = tokens.map((t, i) => (i + 1 < tokens.length ? t : [t, {generateNext: {token: true, options: GREEDY}}]));
    while (generated.length < count) {
        const out = await sequence.controlledEvaluate(input);
        const token = out[input.length - 1]?.next?.token;
        if (token === undefined || token === null) throw new Error("llama.cpp generated no token");
        if (model.isEogToken(token)) break;
        generated.push(token);
        input = [[token, {generateNext: {token: true, options: GREEDY}}]];
    }
    return {text: model.detokenize(generated), tokens: generated, promptTokens: tokens.length};
}

// The prebuilt CPU binary only: never download or build llama.cpp.
async function loadLlama() {
    const {getLlama, LlamaLogLevel} = await import("node-llama-cpp");
    return await getLlama({
        gpu: false,
        build: "never",
        usePrebuiltBinaries: true,
        skipDownload: true,
        progressLogs: false,
        logLevel: LlamaLogLevel.error,
    });
}

async function main() {
    const opts = parseArgs(process.argv.slice(2));
    if (opts.check) {
        const llama = await loadLlama();
        process.stdout.write(JSON.stringify({llama_cpp: llama.llamaCppRelease.release, build: llama.buildType,
                                             gpu: llama.gpu}) + "\n");
        await llama.dispose();
        return;
    }
    if (!fs.existsSync(opts.model)) throw new Error(`${opts.model}: no such file`);
    const rows = opts.rows === null ? [] : await readRows(opts.rows, opts.maxRows);
    const llama = await loadLlama();
    const model = await llama.loadModel({modelPath: opts.model, gpuLayers: 0});
    // The vocabulary as the GGUF lists it (tokenizer.ggml.tokens).
    const vocabSize = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length;
    if (!Number.isInteger(vocabSize) || vocabSize < 1)
        throw new Error(`${opts.model}: no tokenizer.ggml.tokens in the GGUF metadata`);

    const longestRow = rows.reduce((m, r) => Math.max(m, r.length), 0);
    // The prompt's length in tokens is not known before the model is loaded; tokenize it now.
    const promptLen = opts.generate > 0 ? model.tokenize(opts.prompt).length + 1 : 0;
    const contextSize = Math.max(longestRow, promptLen + opts.generate, 8);
    const context = await model.createContext({
        contextSize,
        batchSize: contextSize,
        sequences: 1,
        // One thread by default: the models here are tiny, and llama.cpp's spinning worker
        // threads slow down 100-fold on a loaded 2-core machine. 0: llama.cpp's choice.
        ...(opts.threads > 0 ? {threads: opts.threads} : {}),
    });
    if (context.contextSize < contextSize)
        throw new Error(`llama.cpp made a context of ${context.contextSize} tokens, fewer than the ${contextSize} needed`);
    const sequence = context.getSequence();

    const result = {perplexity: null, mean_nll: null, predictions: 0, rows: rows.length,
                    generated_text: "", generated_tokens: []};
    if (opts.generate > 0) {
        const g = await generate(sequence, model, opts.prompt, opts.generate);
        result.generated_text = g.text;
        result.generated_tokens = g.tokens;
    }
    if (rows.length > 0) {
        const n = vocabSize;
        let sum = 0;
        let predictions = 0;
        for (const [i, row] of rows.entries()) {
            for (const t of row) {
                if (t >= n) throw new Error(`${opts.rows}: row ${i + 1}: token id ${t} is outside the vocabulary of ${n}`);
            }
            if (row.length < 2) continue;
            sum += await rowNll(sequence, row, n);
            predictions += row.length - 1;
        }
        if (predictions === 0) throw new Error(`${opts.rows}: nothing to predict: no row has at least 2 tokens`);
        result.predictions = predictions;
        result.mean_nll = sum / predictions;
        result.perplexity = Math.exp(result.mean_nll);
    }
    process.stdout.write(JSON.stringify(result) + "\n");
    await context.dispose();
    await model.dispose();
    await llama.dispose();
}

main().then(
    () => process.exit(0),
    (err) => {
        const usage = err instanceof UsageError;
        process.stderr.write(`llama_score: error: ${err?.message ?? err}${usage ? "\n" + USAGE : ""}\n`);
        process.exit(usage ? 2 : 1);
    });
