import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

/**
 * Reads a ZIP from standard input with java.util.zip.ZipInputStream, front to back, as a
 * streaming reader must: for every entry it prints its name, the bytes read and their
 * CRC-32 (tab-separated, one line each), and fails on anything the reader refuses.
 */
public final class ZipRead {
    public static void main(String[] args) throws IOException {
        InputStream in = new BufferedInputStream(System.in);
        byte[] buffer = new byte[65536];
        try (ZipInputStream zip = new ZipInputStream(in)) {
            ZipEntry entry;
            while ((entry = zip.getNextEntry()) != null) {
                CRC32 crc = new CRC32();
                long size = 0;
                int n;
                while ((n = zip.read(buffer)) > 0) {
                    crc.update(buffer, 0, n);
                    size += n;
                }
                if (entry.getSize() != size || entry.getCrc() != crc.getValue()) {
                    throw new IOException("entry " + entry.getName() + " does not match its header");
                }
                System.out.println(entry.getName() + "\t" + size + "\t" + crc.getValue());
            }
        }
    }
}
