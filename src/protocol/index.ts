export { GuacamoleParser, parseAll, DEFAULT_PARSER_LIMITS, type ParserLimits } from './parser.js';
export { Instruction, codePointLength, encodeInstruction, encodeInstructionBuffer, hasOpcode } from './instruction.js';
export { openRecording, type RecordingSource } from './recording-file.js';
